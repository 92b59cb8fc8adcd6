"""The job sweep: takes back jobs whose worker stopped renewing its lease, and wakes up jobs whose
message was lost.

Exact and bounded: a queue's due jobs are compared with the messages its broker queue holds, and
only the difference is published again, oldest wake-up first, and never a job whose last wake-up is
younger than `ARV_JOB_REPUBLISH_AFTER_S` (it has not had its chance yet). A backlog is left alone.
Every worker offers to sweep every `ARV_SWEEP_INTERVAL_S` and one of them does (`task_runs`), so
recovery does not hang on Beat or on any one process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

import structlog
from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.orm import Session

from arv.config import Settings
from arv.db.dialect import db_now
from arv.db.models import Job, JobStatus
from arv.db.session import get_sessionmaker
from arv.jobs import task_runs
from arv.jobs.kinds import kind_named
from arv.jobs.publisher import Wakeup, publish

log = structlog.get_logger(__name__)

SWEEP_TASK = "sweep_jobs"

_jobs: Table = Job.__table__  # type: ignore[assignment]


def lost_lease_error(times: int) -> str:
    return (
        f"the worker running it stopped (crashed, was killed or lost its connection) {times} times; "
        "it was not tried again"
    )


@dataclass(frozen=True)
class SweepResult:
    """What one sweep changed."""

    leases_requeued: int
    leases_failed: int
    republished: int
    published: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(
    session: Session,
    *,
    max_lost_leases: int,
    republish_after_s: float,
    queue_lengths: Mapping[str, int | None],
    batch: int = 1000,
) -> tuple[SweepResult, list[Wakeup]]:
    """Take back lapsed leases and find lost wake-ups, in the caller's transaction.

    A job whose lease lapsed `max_lost_leases` times fails, and its kind's failure hook records it.
    Returns the counts and the wake-ups to publish once the caller commits.
    """
    lapsed = and_(_jobs.c.status == JobStatus.RUNNING, _jobs.c.lease_expires_at < db_now())
    exhausted = session.execute(
        select(_jobs.c.id, _jobs.c.kind, _jobs.c.args, _jobs.c.company_id, _jobs.c.lost_leases)
        .where(lapsed, _jobs.c.lost_leases + 1 >= max_lost_leases)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for row in exhausted:
        reason = lost_lease_error(row.lost_leases + 1)
        session.execute(
            update(_jobs)
            .where(_jobs.c.id == row.id, lapsed)
            .values(
                status=JobStatus.FAILED,
                error=reason,
                finished_at=db_now(),
                lease_expires_at=None,
                lost_leases=_jobs.c.lost_leases + 1,
            )
        )
        kind = kind_named(row.kind)
        if kind is not None and kind.on_failure is not None:
            job = Job(id=row.id, kind=row.kind, args=row.args, company_id=row.company_id)
            kind.on_failure(session, job, reason)
    # Rows another transaction holds are left for the next sweep: one stuck lock (a worker cut off
    # mid-transaction, until the server ends its session) must not stop the whole sweep.
    lapsed_ids = list(
        session.scalars(
            select(_jobs.c.id)
            .where(lapsed, _jobs.c.lost_leases + 1 < max_lost_leases)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    )
    requeued = 0
    if lapsed_ids:
        requeued = session.execute(
            update(_jobs)
            .where(_jobs.c.id.in_(lapsed_ids), lapsed)
            .values(
                status=JobStatus.QUEUED,
                available_at=db_now(),
                last_published_at=None,
                lease_expires_at=None,
                lost_leases=_jobs.c.lost_leases + 1,
            )
        ).rowcount  # type: ignore[attr-defined]

    due = and_(_jobs.c.status == JobStatus.QUEUED, _jobs.c.available_at <= db_now())
    waiting_by_queue: dict[str, int] = dict(
        session.execute(select(_jobs.c.queue, func.count()).where(due).group_by(_jobs.c.queue)).all()
    )
    wakeups: list[Wakeup] = []
    for queue, waiting in waiting_by_queue.items():
        in_broker = queue_lengths.get(queue)
        # Unknown (the broker cannot say): every stale job may have lost its message.
        missing = waiting if in_broker is None else waiting - in_broker
        if missing <= 0:
            continue  # every due job of this queue can still have its message waiting: a backlog
        rows = session.execute(
            select(_jobs.c.id, _jobs.c.kind)
            .where(
                due,
                _jobs.c.queue == queue,
                or_(
                    _jobs.c.last_published_at.is_(None),
                    _jobs.c.last_published_at < db_now(-republish_after_s),
                ),
            )
            .order_by(_jobs.c.last_published_at.asc().nulls_first(), _jobs.c.available_at)
            .limit(min(missing, batch))
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            continue
        session.execute(
            update(_jobs)
            .where(_jobs.c.id.in_([row.id for row in rows]))
            .values(last_published_at=db_now(), publish_count=_jobs.c.publish_count + 1)
        )
        wakeups.extend(Wakeup(row.id, row.kind, queue) for row in rows)
    return SweepResult(requeued, len(exhausted), len(wakeups), 0), wakeups


def run_sweep(settings: Settings, queue_lengths: Callable[[], Mapping[str, int | None]]) -> SweepResult:
    """One sweep, committed, then its wake-ups published; those the broker did not take are marked
    unpublished, so the next sweep sends them."""
    lengths = queue_lengths()
    with get_sessionmaker()() as session:
        result, wakeups = sweep(
            session,
            max_lost_leases=settings.job_max_lost_leases,
            republish_after_s=settings.job_republish_after_s,
            queue_lengths=lengths,
        )
        session.commit()
    result = replace(result, published=publish(wakeups))
    if any(result.to_dict().values()):
        log.info("sweep.done", **result.to_dict())
    return result


def offer_to_sweep(
    settings: Settings, queue_lengths: Callable[[], Mapping[str, int | None]]
) -> SweepResult | None:
    """Sweep if no one else started a sweep within the interval (every worker offers); None if not."""
    # A little less than the interval, so that offers a few milliseconds early still win.
    return task_runs.run_recorded(
        SWEEP_TASK, lambda: run_sweep(settings, queue_lengths), min_interval_s=settings.sweep_interval_s * 0.8
    )
