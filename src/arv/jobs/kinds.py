"""Job kinds: each kind of background work is declared once, here in its shape, in its feature module.

A `JobKind` names everything about its work: the task name (which is also `Job.kind`), the queue, the
time limits, the errors that mean it can never succeed, how long transient failures retry, the work
itself and what to do when it fails for good. Enqueueing takes the kind; the Celery tasks and routes
are derived from the registered kinds; the sweep calls a kind's failure hook through `kind_named`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Update
from sqlalchemy.orm import Session

from arv.config import Settings
from arv.db.models import Job
from arv.jobs.queues import Queue
from arv.storage import Storage


class PermanentJobError(Exception):
    """The job cannot succeed however often it runs; the message is for a person."""


class TryLater(Exception):
    """Not now: run the job again in `delay_s` seconds.

    `counts_as_attempt` is False when the job only waited (a rate-limit slot, another attempt still
    busy), which never fails it; True when the outside pushed back (HTTP 429), which counts against the
    kind's retry window like a transient failure.
    """

    def __init__(self, reason: str, *, delay_s: float, counts_as_attempt: bool) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.counts_as_attempt = counts_as_attempt


# What the database-facing part of a job's work does once its output exists; returns what to do
# after the commit (delete a replaced file), if anything.
Record = Callable[[Session], Callable[[], None] | None]


@dataclass
class JobOutcome:
    """What a job's work produced.

    `result` is stored on the job. `record`, if given, writes the work's effect to the database in
    the transaction that settles the job: when that commit fails because the database is away, the
    runner replays `record` on a new connection until it succeeds (or the retry window ends), so the
    output already made (a compiled marker in storage, a message already sent) is kept, not made again.
    """

    result: dict[str, Any] = field(default_factory=dict)
    record: Record | None = None


def recording_or_discarding(
    result: dict[str, Any], statement: Update, storage: Storage, *keys: str
) -> JobOutcome:
    """An outcome that runs `statement` (an UPDATE of the subject it made `keys` for) when the job
    settles; when it matches no row (the subject was deleted meanwhile), the objects at `keys` are
    deleted once the job has settled, and the result says the work was superseded."""

    outcome = JobOutcome(dict(result))

    def record(session: Session) -> Callable[[], None] | None:
        executed = session.execute(statement.execution_options(synchronize_session=False))
        if executed.rowcount:  # type: ignore[attr-defined]
            return None
        outcome.result["superseded"] = True
        return lambda: _delete_all(storage, keys)

    outcome.record = record
    return outcome


def _delete_all(storage: Storage, keys: tuple[str, ...]) -> None:
    for key in keys:
        storage.delete(key)


@dataclass(frozen=True)
class TimeLimits:
    """Seconds a job may run: past `soft_s` it is asked to stop cleanly, past `hard_s` it is killed."""

    soft_s: float
    hard_s: float


def queue_time_limits(queue: Queue, settings: Settings) -> TimeLimits:
    """The time limits of a queue's jobs, from the settings (`ARV_MARKER_TIME_LIMIT_S` and so on)."""
    if queue == Queue.MARKERS:
        return TimeLimits(settings.marker_soft_time_limit_s, settings.marker_time_limit_s)
    if queue == Queue.NOTIFICATIONS:
        return TimeLimits(settings.notification_soft_time_limit_s, settings.notification_time_limit_s)
    if queue == Queue.VIDEOS:
        return TimeLimits(settings.video_soft_time_limit_s, settings.video_time_limit_s)
    return TimeLimits(settings.default_soft_time_limit_s, settings.default_time_limit_s)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter for `window_s` seconds after the first transient failure."""

    base_s: float
    max_s: float
    window_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.job_retry_base_s, settings.job_retry_max_s, settings.job_retry_window_s)


class InFlightQuota(StrEnum):
    """The per-company quotas that count queued and running jobs; a kind names the one it counts under."""

    COMPILES = "compiles_in_flight"
    TRANSCODES = "transcodes_in_flight"


@dataclass(frozen=True)
class JobKind:
    """One kind of background work.

    Parameters:
        name: the task name, stored as `Job.kind`; unique.
        queue: the queue its wake-ups go to.
        run: the work, `run(session, job) -> JobOutcome`; may raise `PermanentJobError`, one of
            `permanent_errors`, `TryLater`, or a transient error (storage, database, network).
        permanent_errors: the feature's own exceptions that mean the job can never succeed; it fails
            at once with their message.
        on_failure: `on_failure(session, job, reason)` records a final failure on the job's subject,
            in the transaction that fails the job (also when the sweep gives up on it).
        time_limits: `time_limits(settings)`; by default the queue's limits from the settings.
        retry: `retry(settings)`; by default `RetryPolicy.from_settings`.
        quota: the in-flight quota its queued and running jobs count under (`arv.services.quotas`);
            None for work a company cannot pile up on its own.
    """

    name: str
    queue: Queue
    run: Callable[[Session, Job], JobOutcome]
    permanent_errors: tuple[type[Exception], ...] = ()
    on_failure: Callable[[Session, Job, str], None] | None = None
    time_limits: Callable[[Settings], TimeLimits] | None = None
    retry: Callable[[Settings], RetryPolicy] = RetryPolicy.from_settings
    quota: InFlightQuota | None = None

    def limits(self, settings: Settings) -> TimeLimits:
        return self.time_limits(settings) if self.time_limits else queue_time_limits(self.queue, settings)


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Make `kind` known (to the worker's task table, to the sweep); returns it, for a module constant."""
    existing = _KINDS.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"two job kinds are named {kind.name!r}")
    _KINDS[kind.name] = kind
    return kind


def registered_kinds() -> list[JobKind]:
    return list(_KINDS.values())


def kind_named(name: str) -> JobKind | None:
    return _KINDS.get(name)
