"""The base class of tasks that run a Job: claim, execute, settle, and classify failures."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import Job
from arv.db.session import get_engine, get_sessionmaker
from arv.services import jobs
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


def retry_delay(attempts: int, *, base_s: float, max_s: float) -> float:
    """Seconds before the next try: exponential in the attempts made, capped, with "equal jitter"
    (half of it fixed, half random) so retries of many jobs failing together spread out."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class PermanentJobError(Exception):
    """The job cannot succeed however often it runs; the message is for a person."""


@dataclass
class JobOutcome:
    """What a job's work produced: its result, and what to do once that is committed."""

    result: dict[str, Any] = field(default_factory=dict)
    after_commit: Callable[[], None] | None = None


class JobTask(Task):  # type: ignore[misc]
    """A Celery task whose only argument is a job id; subclasses say what the job does.

    `execute(session, job)` does the work inside a transaction that also marks the job done;
    `job_failed(session, job, reason)` records a final failure on the job's subject.
    """

    abstract = True
    acks_late = True
    reject_on_worker_lost = True

    # Set by each subclass: the work of the job, run inside the transaction that settles it.
    execute: Callable[[Session, Job], JobOutcome]
    # The service's own exceptions that mean "this job can never succeed", failing it at once with
    # their message, like PermanentJobError.
    permanent_errors: tuple[type[Exception], ...] = ()

    def job_failed(self, session: Session, job: Job, reason: str) -> None:
        """Record on the job's subject that it failed for good; the default has no subject."""

    def lease_seconds(self) -> float:
        hard_limit = self.time_limit or self.app.conf.task_time_limit or 3600
        return float(hard_limit + get_settings().job_lease_margin_s)

    def run_job(self, job_id: str) -> dict[str, Any]:
        permanent: tuple[type[Exception], ...] = (PermanentJobError, *self.permanent_errors)
        settings = get_settings()
        # One connection for the whole job: its claim, work and settlement are several transactions,
        # and a session bound to the engine would check a connection out for each.
        with get_engine().connect() as connection, get_sessionmaker()(bind=connection) as session:
            job = jobs.claim(connection, job_id, lease_s=self.lease_seconds())
            if job is None:
                log.info(
                    "job.skipped",
                    job_id=job_id,
                    task=self.name,
                    reason="already done, running elsewhere, or not due",
                )
                return {"skipped": True}
            try:
                outcome = self.execute(session, job)
                if not jobs.succeed(session, job, outcome.result):
                    session.rollback()
                    return {"skipped": True, "reason": "lease lost to another worker"}
                session.commit()
            except SoftTimeLimitExceeded:
                session.rollback()
                limit = self.soft_time_limit or self.app.conf.task_soft_time_limit
                self._fail(session, job, f"took longer than the {limit} s time limit and was stopped")
                raise
            except permanent as exc:
                session.rollback()
                self._fail(session, job, str(exc))
                return {"failed": str(exc)}
            except TRANSIENT_ERRORS as exc:
                session.rollback()
                reason = f"{type(exc).__name__}: {exc}"
                if job.attempts >= settings.job_max_attempts:
                    self._fail(session, job, f"gave up after {job.attempts} attempts: {reason}")
                    raise
                delay = retry_delay(
                    job.attempts, base_s=settings.job_retry_base_s, max_s=settings.job_retry_max_s
                )
                jobs.retry_later(session, job, delay_s=delay, error=reason)
                session.commit()
                log.warning(
                    "job.retrying",
                    job_id=job_id,
                    task=self.name,
                    attempt=job.attempts,
                    delay_s=round(delay, 2),
                    error=reason,
                )
                raise self.retry(countdown=delay, exc=exc, max_retries=None) from exc
            except Retry:
                raise
            except Exception as exc:
                session.rollback()
                log.exception("job.crashed", job_id=job_id, task=self.name)
                self._fail(session, job, f"internal error ({type(exc).__name__}); the operator has the log")
                raise
        if outcome.after_commit is not None:
            try:
                outcome.after_commit()
            except Exception as exc:  # noqa: BLE001 - clean-up after success must not fail the job
                log.warning("job.after_commit_failed", job_id=job_id, error=str(exc))
        return outcome.result

    def _fail(self, session: Session, job: Job, reason: str) -> None:
        if jobs.fail(session, job, reason):
            self.job_failed(session, job, reason)
        session.commit()
        log.warning("job.failed", job_id=job.id, task=self.name, reason=reason)
