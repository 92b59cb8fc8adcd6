"""Running one attempt of a job: claim, heartbeat, work, settle, and what each failure means.

- A permanent failure (the kind's `permanent_errors`, `PermanentJobError`) fails the job at once with
  its message, and the kind's `on_failure` records it on the job's subject.
- A transient failure (storage, database, broker, network) puts the job back with capped
  exponential backoff and jitter, for the kind's retry window (minutes by default) from the first
  such failure; once the window has closed, the job fails with the last error.
- A job past its soft time limit is failed with a sentence that says so.
- A settlement whose commit fails because the database went away is retried with the work's output
  kept (`JobOutcome.record`), for the same window: a finished compile is not thrown away.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import Job
from arv.db.session import get_engine, get_sessionmaker
from arv.jobs import store
from arv.jobs.heartbeat import HEARTBEAT
from arv.jobs.kinds import JobKind, JobOutcome, PermanentJobError, RetryPolicy, TryLater
from arv.storage import StorageError

log = structlog.get_logger(__name__)

# Failures that may pass on their own: a storage or database hiccup, a network error.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StorageError,
    OperationalError,
    DBAPIError,
    ConnectionError,
    TimeoutError,
)
# Failures of the database itself, when a settlement cannot be written.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, DBAPIError)


@dataclass(frozen=True)
class RunAgain:
    """The attempt is over and the job is due again in `delay_s` seconds: send its wake-up then."""

    delay_s: float
    reason: str


def retry_delay(attempt: int, policy: RetryPolicy) -> float:
    """Seconds before the next try: exponential in the tries made, capped, with "equal jitter" (half
    of it fixed, half random) so retries of many jobs failing together spread out."""
    ceiling = min(policy.max_s, policy.base_s * 2 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def run_job(
    kind: JobKind, job_id: str, *, time_limit_error: type[BaseException] | None = None
) -> dict[str, Any] | RunAgain:
    """Run one attempt of job `job_id`; returns its result, or when to run it again.

    `time_limit_error` is the exception the pool raises at the soft time limit (Celery's
    SoftTimeLimitExceeded): such an attempt fails the job with a sentence saying it took too long,
    and the exception goes on up to the pool.
    """
    settings = get_settings()
    policy = kind.retry(settings)
    limits = kind.limits(settings)
    timeouts: tuple[type[BaseException], ...] = (time_limit_error,) if time_limit_error else ()
    permanent: tuple[type[Exception], ...] = (PermanentJobError, *kind.permanent_errors)
    # One connection for the whole attempt: its claim, work and settlement are several transactions,
    # and a session bound to the engine would check a connection out for each.
    with get_engine().connect() as connection, get_sessionmaker()(bind=connection) as session:
        try:
            job = store.claim(connection, job_id, lease_s=settings.job_lease_s)
        except DATABASE_ERRORS as exc:
            delay = retry_delay(2, policy)
            log.warning("job.claim_failed", job_id=job_id, task=kind.name, error=str(exc), retry_in_s=delay)
            return RunAgain(delay, f"could not claim: {type(exc).__name__}")
        if job is None:
            # A wake-up that came early (a countdown measured on a clock ahead of the database's) is
            # sent again for when the job is due; any other has nothing left to do.
            not_due_for = store.seconds_until_due(connection, job_id)
            if not_due_for is not None:
                return RunAgain(not_due_for + 0.05, "woken up before it was due")
            log.info("job.skipped", job_id=job_id, task=kind.name, reason="done or running elsewhere")
            return {"skipped": True}
        with HEARTBEAT.hold(job, limits, settings, interrupt_with=time_limit_error):
            try:
                outcome = kind.run(session, job)
            except timeouts:
                session.rollback()
                _fail(
                    session, kind, job, f"took longer than the {limits.soft_s:g} s time limit and was stopped"
                )
                raise
            except permanent as exc:
                session.rollback()
                return _fail(session, kind, job, str(exc))
            except TryLater as exc:
                session.rollback()
                return _try_later(session, kind, job, exc, policy)
            except TRANSIENT_ERRORS as exc:
                _rollback(session)
                return _retry(session, kind, job, f"{type(exc).__name__}: {exc}", policy)
            except Exception as exc:
                session.rollback()
                log.exception("job.crashed", job_id=job_id, task=kind.name)
                _fail(session, kind, job, f"internal error ({type(exc).__name__}); the operator has the log")
                raise
            return _settle_success(session, kind, job, outcome, policy)


def _settle_success(
    session: Session, kind: JobKind, job: Job, outcome: JobOutcome, policy: RetryPolicy
) -> dict[str, Any]:
    deadline = time.monotonic() + policy.window_s
    tries = 0
    while True:
        tries += 1
        try:
            after_commit = outcome.record(session) if outcome.record else None
            if not store.succeed(session, job, outcome.result):
                session.rollback()
                log.warning("job.lease_lost", job_id=job.id, task=kind.name, attempt=job.attempts)
                return {"skipped": True, "reason": "another attempt took the job over"}
            session.commit()
            break
        except DATABASE_ERRORS as exc:
            _rollback(session)
            if time.monotonic() > deadline:
                raise
            delay = retry_delay(tries, policy)
            log.warning(
                "job.settlement_retrying",
                job_id=job.id,
                task=kind.name,
                error=str(exc),
                delay_s=round(delay, 2),
            )
            time.sleep(delay)
            # The old connection may be dead: the replay gets one of its own.
            session.close()
            session = get_sessionmaker()()
    if tries > 1:
        session.close()
    if after_commit is not None:
        try:
            after_commit()
        except Exception as exc:  # noqa: BLE001 - clean-up after success must not fail the job
            log.warning("job.after_commit_failed", job_id=job.id, task=kind.name, error=str(exc))
    return outcome.result


def _retry(
    session: Session, kind: JobKind, job: Job, reason: str, policy: RetryPolicy
) -> dict[str, Any] | RunAgain:
    delay = retry_delay(job.attempts, policy)
    try:
        retried = store.retry_later(session, job, delay_s=delay, window_s=policy.window_s, error=reason)
        if not retried:
            session.rollback()
            # The window has closed, or another attempt holds the job (then `fail` changes nothing).
            return _fail(session, kind, job, f"gave up after {policy.window_s:g} s of retries: {reason}")
        session.commit()
    except DATABASE_ERRORS as exc:
        _rollback(session)
        # Nothing could be written: come back once this attempt's lease has lapsed, so the next
        # attempt can claim the job even if the sweep has not run.
        delay = max(delay, get_settings().job_lease_s + 1)
        log.warning("job.retry_not_recorded", job_id=job.id, task=kind.name, error=str(exc))
    log.warning(
        "job.retrying",
        job_id=job.id,
        task=kind.name,
        attempt=job.attempts,
        delay_s=round(delay, 2),
        error=reason,
    )
    return RunAgain(delay, reason)


def _try_later(
    session: Session, kind: JobKind, job: Job, wait: TryLater, policy: RetryPolicy
) -> dict[str, Any] | RunAgain:
    # A little jitter, so jobs pushed back together do not all come back at one instant.
    delay = wait.delay_s + random.uniform(0.05, 0.5)
    if wait.counts_as_attempt:
        if not store.retry_later(session, job, delay_s=delay, window_s=policy.window_s, error=str(wait)):
            session.rollback()
            return _fail(session, kind, job, f"gave up after {policy.window_s:g} s of retries: {wait}")
    else:
        store.postpone(session, job, delay_s=delay, reason=str(wait))
    session.commit()
    log.info("job.later", job_id=job.id, task=kind.name, delay_s=round(delay, 2), reason=str(wait))
    return RunAgain(delay, str(wait))


def _fail(session: Session, kind: JobKind, job: Job, reason: str) -> dict[str, Any]:
    if not store.fail(session, job, reason):
        session.rollback()
        log.warning("job.lease_lost", job_id=job.id, task=kind.name, attempt=job.attempts, would_fail=reason)
        return {"skipped": True, "reason": "another attempt took the job over"}
    if kind.on_failure is not None:
        kind.on_failure(session, job, reason)
    session.commit()
    log.warning("job.failed", job_id=job.id, task=kind.name, reason=reason)
    return {"failed": reason}


def _rollback(session: Session) -> None:
    # Rolling back over a connection the database dropped raises too; the session is reset anyway.
    try:
        session.rollback()
    except DATABASE_ERRORS:
        session.close()
