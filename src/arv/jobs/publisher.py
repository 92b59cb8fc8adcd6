"""Publishing jobs' wake-ups once the transaction that wrote them commits, through the publisher the
process was built with (the broker's, handed in where the API and the worker are made).

A wake-up that cannot be sent is not an error here: the row is the truth, and the sweep publishes
again what was never picked up. A transaction that rolls back publishes nothing.

Only the outermost commit sends. SQLAlchemy fires `after_commit` and `after_rollback` for savepoints
too (`Session.begin_nested`): a released savepoint's jobs are not visible to any worker until the
transaction around it commits, and a savepoint rolled back forgets its own wake-ups, not those of the
transaction around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import event, update
from sqlalchemy.orm import Session, SessionTransaction

from arv.db.models import Job, JobStatus
from arv.db.session import get_engine

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Wakeup:
    """What the broker carries for a job: its id, the task that runs it, and the queue."""

    job_id: str
    task_name: str
    queue: str


# Sends wake-ups; returns how many the broker took. Must not raise for a broker that is down.
Publisher = Callable[[Sequence[Wakeup]], int]

_publisher: Publisher | None = None

# Key in Session.info of the wake-ups to send once the session's outermost transaction commits.
_PENDING = "arv_wakeups"
_LISTENING = "arv_wakeups_listening"
# A wake-up waiting for a commit, with the savepoint it was written in (None: the outermost transaction).
_Pending = tuple[SessionTransaction | None, Wakeup]


def use_publisher(publisher: Publisher | None) -> None:
    """Hand the process's publisher to the job layer (the API and the worker do, when built)."""
    global _publisher
    _publisher = publisher


def publish(wakeups: Sequence[Wakeup]) -> int:
    """Send `wakeups` now; returns how many the broker took.

    Those it did not take (the broker is down; no publisher in this process, as in a script) are
    marked never published, so the next sweep sends them at once instead of waiting
    `ARV_JOB_REPUBLISH_AFTER_S` for a message that does not exist.
    """
    if not wakeups:
        return 0
    sent = _publisher(wakeups) if _publisher is not None else 0
    if sent < len(wakeups):
        unsent = [wakeup.job_id for wakeup in wakeups[sent:]]
        log.info("job.publish_deferred", jobs=len(unsent), publisher=_publisher is not None)
        try:
            with get_engine().begin() as connection:
                connection.execute(
                    update(Job)
                    .where(Job.id.in_(unsent), Job.status == JobStatus.QUEUED)
                    .values(last_published_at=None)
                )
        except Exception as exc:  # noqa: BLE001 - then the sweep sends them a little later
            log.warning("job.publish_not_recorded", jobs=len(unsent), error=str(exc))
    return sent


def publish_after_commit(session: Session, wakeups: Sequence[Wakeup]) -> None:
    """Send `wakeups` once `session`'s outermost transaction commits; forget them if it, or the
    savepoint they were written in, rolls back."""
    if _LISTENING not in session.info:
        # Listeners on this session alone, not on SQLAlchemy's Session class: only sessions that write
        # jobs carry them, and they go with the session.
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_rollback", _on_rollback)
        session.info[_LISTENING] = True
    # None for the outermost transaction, else the innermost savepoint open now.
    writer = session.get_nested_transaction()
    pending: list[_Pending] = session.info.setdefault(_PENDING, [])
    pending.extend((writer, wakeup) for wakeup in wakeups)


def _on_commit(session: Session) -> None:
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        pending: list[_Pending] = session.info.pop(_PENDING, [])
        publish([wakeup for _, wakeup in pending])
        return
    # A savepoint was released: what it wrote now belongs to the transaction around it.
    enclosing = _enclosing_savepoint(savepoint)
    session.info[_PENDING] = [
        (enclosing if _written_within(writer, savepoint) else writer, wakeup)
        for writer, wakeup in session.info.get(_PENDING, [])
    ]


def _on_rollback(session: Session) -> None:
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop(_PENDING, None)
        return
    session.info[_PENDING] = [
        (writer, wakeup)
        for writer, wakeup in session.info.get(_PENDING, [])
        if not _written_within(writer, savepoint)
    ]


def _enclosing_savepoint(savepoint: SessionTransaction) -> SessionTransaction | None:
    """The savepoint around `savepoint`, or None when the outermost transaction is around it."""
    transaction = savepoint.parent
    while transaction is not None and not transaction.nested:
        transaction = transaction.parent
    return transaction


def _written_within(writer: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    """Whether `writer` is `savepoint` or a savepoint inside it."""
    transaction = writer
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False
