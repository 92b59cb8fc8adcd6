"""Delivering one notification to one channel exactly once: claim, send, record, in that order.

The order is the guarantee. A delivery is claimed with a conditional update (`pending` -> `sending`)
that is committed before the message leaves, and recorded `sent` in a commit right after the channel
accepts it (retried while the database is away, so a message that left is recorded `sent`). A second
run (a redelivered message, a second job for the same delivery) finds it `sent` or `sending` and sends
nothing: a `sending` claim of another job that is still running makes it come back later. The only
window left is a crash between the channel accepting the message and that commit: the delivery stays
`sending`, and the next attempt of the same job (which knows the claim for its own, `claimed_by_job`)
marks it failed as "outcome unknown" instead of sending again (a person may resend it). So every
delivery ends `sent` or `failed` with a reason.

The wait for a rate-limit slot happens before the claim, so the `sending` state spans only the
network exchange itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session

from arv.config import Settings, get_settings
from arv.db.models import Channel, DeliveryStatus, Job, NotificationDelivery, utcnow
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, TryLater, register
from arv.jobs.queues import Queue
from arv.services.notify.email import EmailChannel
from arv.services.notify.errors import ChannelUnavailable, DeliveryRefused, OutcomeUnknown, RetryAfter
from arv.services.notify.messages import RenderedMessage, render_notification
from arv.services.notify.ratelimit import Limit, RateLimiter, Reservation, rate_limiter_for
from arv.services.notify.telegram import TelegramChannel

log = structlog.get_logger(__name__)

CRASHED_WHILE_SENDING = (
    "the worker stopped while sending, so whether the message arrived is unknown; "
    "it was not sent again automatically (resend it if it did not arrive)"
)


class NotificationChannel(Protocol):
    name: str

    def limits(self, recipient: str) -> list[Limit]: ...

    def send(self, recipient: str, message: RenderedMessage, *, delivery_id: int) -> None: ...


def channels_for(settings: Settings) -> dict[str, NotificationChannel]:
    return {Channel.EMAIL: EmailChannel(settings), Channel.TELEGRAM: TelegramChannel(settings)}


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: int
    status: str
    sent_now: bool
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "delivery_id": self.delivery_id,
            "status": self.status,
            "sent_now": self.sent_now,
        }
        if self.note:
            result["note"] = self.note
        return result


def deliver(
    session: Session,
    job: Job,
    *,
    settings: Settings,
    limiter: RateLimiter,
    channels: dict[str, NotificationChannel] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobOutcome:
    """Send the delivery `job` names unless it was sent or is being sent; commits its claim.

    The outcome's `record` marks it sent. Raises `ChannelUnavailable` (retry with backoff),
    `TryLater` (come back later), and `DeliveryRefused` / `OutcomeUnknown` after recording the
    delivery as failed.
    """
    delivery_id = int(job.args["delivery_id"])
    delivery = session.get(NotificationDelivery, delivery_id, populate_existing=True)
    if delivery is None:
        return JobOutcome(
            DeliveryOutcome(delivery_id, "deleted", False, "the notification was deleted").to_dict()
        )
    if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
        return JobOutcome(
            DeliveryOutcome(delivery_id, delivery.status, False, "already settled; nothing sent").to_dict()
        )
    if delivery.status == DeliveryStatus.SENDING:
        claimant = delivery.claimed_by_job
        if claimant is not None and claimant != job.id and store.is_running(session, claimant):
            session.commit()
            raise TryLater(
                "another job is sending this delivery", delay_s=settings.job_lease_s, counts_as_attempt=False
            )
        # This job's own earlier attempt, or another job that ended, stopped between claim and record.
        _settle(
            session,
            delivery_id,
            DeliveryStatus.SENDING,
            status=DeliveryStatus.FAILED,
            last_error=CRASHED_WHILE_SENDING,
        )
        raise OutcomeUnknown(CRASHED_WHILE_SENDING)

    channel = (channels or channels_for(settings)).get(delivery.channel)
    if channel is None:
        _settle(
            session,
            delivery_id,
            DeliveryStatus.PENDING,
            status=DeliveryStatus.FAILED,
            last_error=f"unknown channel {delivery.channel!r}",
        )
        raise DeliveryRefused(f"unknown channel {delivery.channel!r}")
    message = render_notification(session, delivery.notification)
    recipient = delivery.recipient
    session.commit()  # end the read transaction: no database lock is held while waiting

    limits = channel.limits(recipient)
    reservation = _wait_for_slot(limiter, limits, channel.name, settings.notification_max_rate_wait_s, sleep)
    try:
        return _claim_and_send(session, delivery_id, job.id, channel, recipient, message)
    finally:
        limiter.release(limits, reservation)


def _wait_for_slot(
    limiter: RateLimiter,
    limits: list[Limit],
    channel_name: str,
    max_wait_s: float,
    sleep: Callable[[float], None],
) -> Reservation:
    """Wait here for a slot not further than `max_wait_s` away, or raise SendLater."""
    waited = 0.0
    while True:
        reservation = limiter.reserve(limits, max_wait_s=max_wait_s - waited)
        if reservation.granted:
            if reservation.wait_s > 0:
                sleep(reservation.wait_s)
            return reservation
        if waited + reservation.wait_s > max_wait_s:
            raise TryLater(
                f"rate limit: next {channel_name} slot in {reservation.wait_s:.2f} s",
                delay_s=reservation.wait_s,
                counts_as_attempt=False,
            )
        sleep(reservation.wait_s)
        waited += reservation.wait_s


def _claim_and_send(
    session: Session,
    delivery_id: int,
    job_id: str,
    channel: NotificationChannel,
    recipient: str,
    message: RenderedMessage,
) -> JobOutcome:
    if not _claim(session, delivery_id, job_id):
        return JobOutcome(
            DeliveryOutcome(delivery_id, "skipped", False, "claimed by another attempt").to_dict()
        )
    try:
        channel.send(recipient, message, delivery_id=delivery_id)
    except (DeliveryRefused, OutcomeUnknown) as exc:
        _settle(
            session, delivery_id, DeliveryStatus.SENDING, status=DeliveryStatus.FAILED, last_error=str(exc)
        )
        raise
    except RetryAfter as exc:
        _settle(
            session, delivery_id, DeliveryStatus.SENDING, status=DeliveryStatus.PENDING, last_error=str(exc)
        )
        raise TryLater(str(exc), delay_s=exc.retry_after_s, counts_as_attempt=True) from exc
    except (ChannelUnavailable, ConnectionError, TimeoutError) as exc:
        _settle(
            session, delivery_id, DeliveryStatus.SENDING, status=DeliveryStatus.PENDING, last_error=str(exc)
        )
        raise
    log.info("notification.sent", delivery_id=delivery_id, channel=channel.name)

    def record_sent(session: Session) -> None:
        _settle(
            session,
            delivery_id,
            DeliveryStatus.SENDING,
            commit=False,
            status=DeliveryStatus.SENT,
            sent_at=utcnow(),
            last_error=None,
        )

    return JobOutcome(DeliveryOutcome(delivery_id, DeliveryStatus.SENT, True).to_dict(), record=record_sent)


def _claim(session: Session, delivery_id: int, job_id: str) -> bool:
    result = session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id, NotificationDelivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.SENDING,
            claimed_at=utcnow(),
            claimed_by_job=job_id,
            attempts=NotificationDelivery.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _settle(
    session: Session, delivery_id: int, from_status: str, *, commit: bool = True, **values: object
) -> bool:
    result = session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id, NotificationDelivery.status == from_status)
        .values(claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    if commit:
        session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def fail_unsent(session: Session, delivery_id: int, reason: str) -> bool:
    """Record a final failure of the job on its delivery, unless the delivery was sent meanwhile.

    Does not commit: the caller's transaction settles the job too.
    """
    result = session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id == delivery_id,
            NotificationDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
        )
        .values(status=DeliveryStatus.FAILED, last_error=reason, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _deliver_job(session: Session, job: Job) -> JobOutcome:
    settings = get_settings()
    return deliver(session, job, settings=settings, limiter=rate_limiter_for(settings))


def _delivery_failed(session: Session, job: Job, reason: str) -> None:
    fail_unsent(session, int(job.args["delivery_id"]), reason)


DELIVER = register(
    JobKind(
        name="deliver_notification",
        queue=Queue.NOTIFICATIONS,
        run=_deliver_job,
        permanent_errors=(DeliveryRefused, OutcomeUnknown),
        on_failure=_delivery_failed,
    )
)
