"""Jobs: background work recorded in the database and published to the broker only after commit.

The row is the truth; a broker message is a wake-up carrying the job id. A job is claimed with a
conditional update (so a second delivery does nothing), runs under a lease (so a dead worker's job
comes back), and is swept: jobs whose message was lost are published again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Table, and_, bindparam, event, func, insert, or_, select, update
from sqlalchemy.orm import Session

from arv.db.models import Job, JobStatus, new_uuid, utcnow

log = structlog.get_logger(__name__)

# Key in Session.info of the jobs to publish once the transaction that wrote them commits.
_TO_PUBLISH = "arv_jobs_to_publish"


@dataclass(frozen=True)
class Wakeup:
    """What the broker carries for a job: its id, the task that runs it, and the queue."""

    job_id: str
    task_name: str
    queue: str
    countdown: float | None = None


def enqueue(
    session: Session, *, task_name: str, queue: str, args: dict[str, Any], company_id: int | None = None
) -> Job:
    """Write a job in the caller's transaction; its message is published after that commits.

    Returns a detached copy of the row (its id, for the record that waits on it).
    """
    [row] = _write_jobs(session, task_name=task_name, queue=queue, jobs=[(args, company_id)])
    return Job(**row)


def enqueue_many(
    session: Session, *, task_name: str, queue: str, jobs: Iterable[tuple[dict[str, Any], int | None]]
) -> list[str]:
    """Write many jobs (args, company id) in one statement; published after the caller commits."""
    return [row["id"] for row in _write_jobs(session, task_name=task_name, queue=queue, jobs=jobs)]


def _write_jobs(
    session: Session, *, task_name: str, queue: str, jobs: Iterable[tuple[dict[str, Any], int | None]]
) -> list[dict[str, Any]]:
    # One INSERT on the table, not the ORM's unit of work: an upload writes its job on the hot path.
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "id": new_uuid(),
            "kind": task_name,
            "queue": queue,
            "args": args,
            "company_id": company_id,
            "status": JobStatus.QUEUED,
            "attempts": 0,
            "publish_count": 1,
            "available_at": now,
            "last_published_at": now,
            "created_at": now,
        }
        for args, company_id in jobs
    ]
    if rows:
        session.execute(insert(_jobs), rows)
        session.info.setdefault(_TO_PUBLISH, []).extend(Wakeup(row["id"], task_name, queue) for row in rows)
    return rows


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    wakeups = session.info.pop(_TO_PUBLISH, None)
    if wakeups:
        publish(wakeups)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_TO_PUBLISH, None)


def publish(wakeups: Iterable[Wakeup]) -> int:
    """Send the wake-ups now; what the broker does not take, the sweep publishes later."""
    from arv.tasks.publish import send_wakeups

    return send_wakeups(list(wakeups))


# Claiming runs once per task on a worker: the statement is built once, on the table rather than the
# ORM class, so each claim costs its round trips and little Python.
_jobs: Table = Job.__table__  # type: ignore[assignment]
_CLAIM = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("job_id"),
        or_(
            and_(_jobs.c.status == JobStatus.QUEUED, _jobs.c.available_at <= bindparam("now")),
            and_(_jobs.c.status == JobStatus.RUNNING, _jobs.c.lease_expires_at < bindparam("now")),
        ),
    )
    .values(
        status=JobStatus.RUNNING,
        attempts=_jobs.c.attempts + 1,
        lease_expires_at=bindparam("lease_expires_at"),
        started_at=bindparam("now"),
    )
    .returning(*_jobs.c)
)


# On PostgreSQL the claim's commit does not wait for its WAL to reach the disk: `set_config(...,
# is_local => true)` turns synchronous_commit off for the claim's own transaction only. A claim lost
# in a server crash leaves the job queued, and the sweep publishes it again; the settlement, which
# records the work, is flushed as usual (and flushes the claim before it).
_CLAIM_WITHOUT_FLUSH = _CLAIM.where(func.set_config("synchronous_commit", "off", True) == "off")


def claim(connection: Connection, job_id: str, *, lease_s: float) -> Job | None:
    """Take the job for this worker, or None when it is done, running elsewhere or not yet due.

    A job whose lease has expired (its worker died) can be claimed again. The claim commits at once,
    before the job's work starts; `connection` must not be in a transaction.
    """
    now = utcnow()
    params = {"job_id": job_id, "now": now, "lease_expires_at": now + timedelta(seconds=lease_s)}
    if connection.dialect.name == "postgresql":
        # One statement, atomic by itself: in autocommit it commits on its own, sparing the BEGIN and
        # COMMIT round trips of a transaction around it (two of a no-op job's six).
        connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            row = connection.execute(_CLAIM_WITHOUT_FLUSH, params).one_or_none()
            connection.commit()  # ends SQLAlchemy's own record of the transaction; the server has none
        finally:
            connection.execution_options(isolation_level=connection.default_isolation_level)
    else:
        # SQLite is in-process: a transaction costs no round trip, and it keeps its BEGIN IMMEDIATE.
        with connection.begin():
            row = connection.execute(_CLAIM, params).one_or_none()
    # A detached copy of the row: the job's work reads it; settling it goes through `_settle`.
    return Job(**row._mapping) if row is not None else None


# Only the attempt that holds the claim may settle it; a stale worker whose lease was taken over
# changes nothing.
_HOLDS_CLAIM = and_(
    _jobs.c.id == bindparam("job_id"),
    _jobs.c.status == JobStatus.RUNNING,
    _jobs.c.attempts == bindparam("attempt"),
)
# Success is settled once per task: built once, like the claim.
_SUCCEED = (
    update(_jobs)
    .where(_HOLDS_CLAIM)
    .values(
        status=JobStatus.SUCCEEDED,
        result=bindparam("outcome", type_=_jobs.c.result.type),
        error=None,
        finished_at=bindparam("settled_at", type_=_jobs.c.finished_at.type),
        lease_expires_at=None,
    )
)


def _settle(session: Session, job: Job, **values: Any) -> bool:
    result = session.execute(
        update(_jobs).where(_HOLDS_CLAIM).values(**values), {"job_id": job.id, "attempt": job.attempts}
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def succeed(session: Session, job: Job, result: dict[str, Any] | None = None) -> bool:
    executed = session.execute(
        _SUCCEED, {"job_id": job.id, "attempt": job.attempts, "outcome": result, "settled_at": utcnow()}
    )
    return executed.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def fail(session: Session, job: Job, error: str) -> bool:
    return _settle(
        session, job, status=JobStatus.FAILED, error=error, finished_at=utcnow(), lease_expires_at=None
    )


def retry_later(session: Session, job: Job, *, delay_s: float, error: str) -> bool:
    now = utcnow()
    return _settle(
        session,
        job,
        status=JobStatus.QUEUED,
        error=error,
        lease_expires_at=None,
        available_at=now + timedelta(seconds=delay_s),
        last_published_at=now,
        publish_count=Job.publish_count + 1,
    )


def postpone(session: Session, job: Job, *, delay_s: float, reason: str) -> bool:
    """Put the job back for later without counting this attempt: it waited, it did not fail."""
    now = utcnow()
    return _settle(
        session,
        job,
        status=JobStatus.QUEUED,
        error=reason,
        attempts=Job.attempts - 1,
        lease_expires_at=None,
        available_at=now + timedelta(seconds=delay_s),
        last_published_at=now,
        publish_count=Job.publish_count + 1,
    )


@dataclass(frozen=True)
class SweepResult:
    """What one sweep changed."""

    expired_leases_requeued: int
    expired_leases_failed: int
    republished: int

    def to_dict(self) -> dict[str, int]:
        return {
            "expired_leases_requeued": self.expired_leases_requeued,
            "expired_leases_failed": self.expired_leases_failed,
            "republished": self.republished,
        }


LEASE_EXPIRED_ERROR = "the worker running it stopped (crashed or killed by its time limit) too many times"


def sweep(
    session: Session,
    *,
    max_attempts: int,
    republish_after_s: float,
    queue_lengths: dict[str, int | None],
    now: datetime | None = None,
    batch: int = 1000,
) -> tuple[SweepResult, list[Wakeup], list[str]]:
    """Take back jobs whose worker died and find jobs whose message was lost.

    Returns the counts, the wake-ups to publish (after the caller commits) and the ids of jobs that
    failed for good here, whose records the caller marks failed.
    """
    now = now or utcnow()
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    failed_ids = list(
        session.scalars(
            select(Job.id)
            .where(expired, Job.attempts >= max_attempts)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    )
    if failed_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(failed_ids), expired)
            .values(
                status=JobStatus.FAILED, error=LEASE_EXPIRED_ERROR, finished_at=now, lease_expires_at=None
            )
            .execution_options(synchronize_session=False)
        )
    requeued = session.execute(
        update(Job)
        .where(expired, Job.attempts < max_attempts)
        .values(status=JobStatus.QUEUED, available_at=now, last_published_at=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]

    stale_before = now - timedelta(seconds=republish_after_s)
    due = and_(Job.status == JobStatus.QUEUED, Job.available_at <= now)
    waiting_by_queue = dict(
        session.execute(select(Job.queue, func.count()).where(due).group_by(Job.queue)).all()
    )
    wakeups: list[Wakeup] = []
    for queue, waiting in waiting_by_queue.items():
        in_broker = queue_lengths.get(queue)
        if in_broker is not None and in_broker >= waiting:
            continue  # every due job of this queue still has its message waiting: a backlog, not a loss
        rows = session.execute(
            select(Job.id, Job.kind)
            .where(
                due,
                Job.queue == queue,
                or_(Job.last_published_at.is_(None), Job.last_published_at < stale_before),
            )
            .order_by(Job.available_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            continue
        ids = [row.id for row in rows]
        session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(last_published_at=now, publish_count=Job.publish_count + 1)
            .execution_options(synchronize_session=False)
        )
        wakeups.extend(Wakeup(row.id, row.kind, queue) for row in rows)
    return SweepResult(requeued, len(failed_ids), len(wakeups)), wakeups, failed_ids
