"""The job table's statements, kept together, each with what it guarantees.

The row is the truth; a broker message is only a wake-up carrying the job id. Every time in these
statements is the database's clock (`db_now`), so processes whose clocks disagree still agree on
which job is due and which lease has lapsed.

- enqueue: the job is written in the caller's transaction and woken up after it commits.
- claim: one conditional UPDATE takes a queued, due job (or one whose lease lapsed): a second
  delivery of the same message, or a second worker, finds nothing to take.
- renew: the running attempt's heartbeat pushes its lease forward; a dead worker's lease lapses
  within `ARV_JOB_LEASE_S`, whatever the job's time limit.
- settle (succeed, fail, retry_later, postpone): only the attempt that holds the claim may settle
  it. An attempt whose lapsed lease the sweep put back in the queue may still settle, as long as no
  other attempt claimed the job since: its work is done, so the job need not run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from arv.db.dialect import db_now
from arv.db.models import Job, JobStatus, new_uuid
from arv.jobs.kinds import JobKind
from arv.jobs.publisher import Wakeup, publish_after_commit

_jobs: Table = Job.__table__  # type: ignore[assignment]


# ---- enqueue ------------------------------------------------------------------------------------

# One INSERT on the table, not the ORM's unit of work: an upload writes its job on the hot path.
_ENQUEUE = insert(_jobs).values(
    status=JobStatus.QUEUED,
    attempts=0,
    lost_leases=0,
    publish_count=1,
    available_at=db_now(),
    last_published_at=db_now(),
    created_at=db_now(),
)


def enqueue(session: Session, kind: JobKind, args: dict[str, Any], *, company_id: int | None = None) -> str:
    """Write a job of `kind` in the caller's transaction; it is woken up once that commits.

    Returns the job's id (also the Celery task id of its messages).
    """
    [job_id] = enqueue_many(session, kind, [(args, company_id)])
    return job_id


def enqueue_many(
    session: Session, kind: JobKind, jobs: Iterable[tuple[dict[str, Any], int | None]]
) -> list[str]:
    """Write many jobs of `kind` (args, company id) in one statement; woken up after the commit."""
    rows: list[dict[str, Any]] = [
        {"id": new_uuid(), "kind": kind.name, "queue": kind.queue.value, "args": args, "company_id": company}
        for args, company in jobs
    ]
    if rows:
        session.execute(_ENQUEUE, rows)
        publish_after_commit(session, [Wakeup(row["id"], kind.name, kind.queue.value) for row in rows])
    return [row["id"] for row in rows]


# ---- claim and renew ----------------------------------------------------------------------------


@contextmanager
def _committed_alone(connection: Connection) -> Iterator[None]:
    """Run the block's statements each committing on its own, with no transaction around them.

    On PostgreSQL that is autocommit: no BEGIN and COMMIT round trips, and no open transaction that a
    network cut between a statement and its COMMIT would leave holding the job's row lock (the sweep
    that should take the job back would wait on it). SQLite is in-process: a transaction costs no round
    trip, and it keeps its BEGIN IMMEDIATE. `connection` must not be in a transaction.
    """
    if connection.dialect.name != "postgresql":
        with connection.begin():
            yield
        return
    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield
        connection.commit()  # ends SQLAlchemy's own record of the transaction; the server has none
    finally:
        connection.execution_options(isolation_level=connection.default_isolation_level)


_CLAIM = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("job_id"),
        or_(
            and_(_jobs.c.status == JobStatus.QUEUED, _jobs.c.available_at <= db_now()),
            and_(_jobs.c.status == JobStatus.RUNNING, _jobs.c.lease_expires_at < db_now()),
        ),
    )
    .values(
        # Taking over a lapsed lease counts it as lost, like the sweep does.
        lost_leases=_jobs.c.lost_leases + case((_jobs.c.status == JobStatus.RUNNING, 1), else_=0),
        status=JobStatus.RUNNING,
        attempts=_jobs.c.attempts + 1,
        lease_expires_at=db_now(bindparam("lease_s")),
        started_at=db_now(),
    )
    .returning(*_jobs.c)
)

# On PostgreSQL the claim's commit does not wait for its WAL to reach the disk: `set_config(...,
# is_local => true)` turns synchronous_commit off for the claim's own transaction only. A claim lost
# in a server crash leaves the job queued, and the sweep publishes it again; the settlement, which
# records the work, is flushed as usual (and flushes the claim before it).
_CLAIM_WITHOUT_FLUSH = _CLAIM.where(func.set_config("synchronous_commit", "off", True) == "off")


def claim(connection: Connection, job_id: str, *, lease_s: float) -> Job | None:
    """Take the job for this attempt, or None when it is done, running elsewhere or not yet due.

    The claim commits at once, before the job's work starts; `connection` must not be in a
    transaction. Returns a detached copy of the row, whose `attempts` is this attempt's token.
    """
    postgresql = connection.dialect.name == "postgresql"
    with _committed_alone(connection):
        row = connection.execute(
            _CLAIM_WITHOUT_FLUSH if postgresql else _CLAIM, {"job_id": job_id, "lease_s": lease_s}
        ).one_or_none()
    return Job(**row._mapping) if row is not None else None


def seconds_until_due(connection: Connection, job_id: str) -> float | None:
    """How long until a queued job is due, by the database's clock; None if it is not queued and
    waiting (done, running, due already, or deleted)."""
    with connection.begin():
        row = connection.execute(
            select(_jobs.c.available_at, db_now()).where(
                _jobs.c.id == job_id, _jobs.c.status == JobStatus.QUEUED, _jobs.c.available_at > db_now()
            )
        ).one_or_none()
    return (row[0] - row[1]).total_seconds() if row is not None else None


_RENEW = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("job_id"),
        _jobs.c.attempts == bindparam("attempt"),
        _jobs.c.status == JobStatus.RUNNING,
    )
    .values(lease_expires_at=db_now(bindparam("lease_s")))
)


def renew_leases(connection: Connection, held: Sequence[tuple[str, int]], *, lease_s: float) -> int:
    """Push the leases of these running attempts (job id, attempt) `lease_s` seconds past now."""
    if not held:
        return 0
    params = [{"job_id": job_id, "attempt": attempt, "lease_s": lease_s} for job_id, attempt in held]
    with _committed_alone(connection):
        result = connection.execute(_RENEW, params)
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


# ---- settle -------------------------------------------------------------------------------------

# The attempt that holds the claim: the job's current attempt, running, or put back by the sweep
# after its lease lapsed but not claimed by anyone since.
_HOLDS_CLAIM = and_(
    _jobs.c.id == bindparam("job_id"),
    _jobs.c.attempts == bindparam("attempt"),
    _jobs.c.status.in_([JobStatus.RUNNING, JobStatus.QUEUED]),
)

_SUCCEED = (
    update(_jobs)
    .where(_HOLDS_CLAIM)
    .values(
        status=JobStatus.SUCCEEDED,
        result=bindparam("outcome", type_=_jobs.c.result.type),
        error=None,
        finished_at=db_now(),
        lease_expires_at=None,
    )
)


def succeed(session: Session, job: Job, result: dict[str, Any] | None = None) -> bool:
    """Settle the attempt as done with `result`; False when the claim is no longer this attempt's."""
    executed = session.execute(_SUCCEED, {"job_id": job.id, "attempt": job.attempts, "outcome": result})
    return executed.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _settle(session: Session, job: Job, *extra_conditions: Any, **values: Any) -> bool:
    result = session.execute(
        update(_jobs).where(_HOLDS_CLAIM, *extra_conditions).values(**values),
        {"job_id": job.id, "attempt": job.attempts},
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def fail(session: Session, job: Job, error: str) -> bool:
    """Settle the attempt as failed for good, with a reason a person can act on."""
    return _settle(
        session, job, status=JobStatus.FAILED, error=error, finished_at=db_now(), lease_expires_at=None
    )


def retry_later(session: Session, job: Job, *, delay_s: float, window_s: float, error: str) -> bool:
    """Put the job back to run in `delay_s` seconds, unless its retry window has closed.

    The window opens at the job's first transient failure and lasts `window_s` seconds (by the
    database's clock). False when it has closed (fail the job instead) or the claim is not this
    attempt's any more.
    """
    retry_until = func.coalesce(_jobs.c.retry_until, db_now(window_s))
    return _settle(
        session,
        job,
        retry_until > db_now(),
        status=JobStatus.QUEUED,
        error=error,
        lease_expires_at=None,
        retry_until=retry_until,
        available_at=db_now(delay_s),
        last_published_at=db_now(),
        publish_count=_jobs.c.publish_count + 1,
    )


def postpone(session: Session, job: Job, *, delay_s: float, reason: str) -> bool:
    """Put the job back for later without touching its retry window: it waited, it did not fail."""
    return _settle(
        session,
        job,
        status=JobStatus.QUEUED,
        error=reason,
        lease_expires_at=None,
        available_at=db_now(delay_s),
        last_published_at=db_now(),
        publish_count=_jobs.c.publish_count + 1,
    )


def is_running(session: Session, job_id: str) -> bool:
    """Whether an attempt of the job holds a live lease now."""
    return bool(
        session.scalar(
            select(func.count())
            .select_from(_jobs)
            .where(
                _jobs.c.id == job_id,
                _jobs.c.status == JobStatus.RUNNING,
                _jobs.c.lease_expires_at >= db_now(),
            )
        )
    )
