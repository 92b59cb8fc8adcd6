"""Delivering one notification to one channel exactly once: claim, send, record, in that order.

The order is the guarantee. A delivery is claimed with a conditional update (`pending` -> `sending`)
that is committed before the message leaves, and recorded `sent` in a commit right after the channel
accepts it. A second run (a redelivered message, a job whose lease expired, a second job for the same
delivery) finds it `sent` or `sending` and sends nothing. The only window left is a crash between the
channel accepting the message and that commit: the delivery stays `sending`, and the next attempt
marks it failed as "outcome unknown" instead of sending again (a person may resend it).

The wait for a rate-limit slot happens before the claim, so the `sending` state spans only the
network exchange itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session

from arv.config import Settings
from arv.db.models import Company, NotificationDelivery, utcnow
from arv.services.notify.email import EmailChannel
from arv.services.notify.errors import ChannelUnavailable, DeliveryRefused, OutcomeUnknown, RetryAfter
from arv.services.notify.messages import RenderedMessage, render_notification
from arv.services.notify.outbox import Channel, DeliveryStatus
from arv.services.notify.ratelimit import Limit, RateLimiter, Reservation
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


class SendLater(Exception):
    """Not now: come back in `delay_s` seconds. `counts_as_attempt` is False when the delivery only
    waited for its rate-limit slot, True when the channel itself pushed back (HTTP 429)."""

    def __init__(self, reason: str, *, delay_s: float, counts_as_attempt: bool) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.counts_as_attempt = counts_as_attempt


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
    delivery_id: int,
    *,
    settings: Settings,
    limiter: RateLimiter,
    channels: dict[str, NotificationChannel] | None = None,
    stale_claim_after_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryOutcome:
    """Send delivery `delivery_id` unless it was sent or is being sent; commits its state changes.

    Raises `ChannelUnavailable` (retry with backoff), `SendLater` (come back later), and
    `DeliveryRefused` / `OutcomeUnknown` after recording the delivery as failed.
    """
    delivery = session.get(NotificationDelivery, delivery_id, populate_existing=True)
    if delivery is None:
        return DeliveryOutcome(delivery_id, "deleted", False, "the notification was deleted")
    if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
        return DeliveryOutcome(delivery_id, delivery.status, False, "already settled; nothing sent")
    if delivery.status == DeliveryStatus.SENDING:
        claimed_at = delivery.claimed_at
        if claimed_at is not None and utcnow() - claimed_at < timedelta(seconds=stale_claim_after_s):
            return DeliveryOutcome(delivery_id, delivery.status, False, "being sent by another attempt")
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
    notification = delivery.notification
    company = session.get(Company, notification.company_id)
    assert company is not None  # the notification's foreign key cascades with the company
    message = render_notification(session, notification, company, settings)
    recipient = delivery.recipient
    session.commit()  # end the read transaction: no database lock is held while waiting

    limits = channel.limits(recipient)
    reservation = _wait_for_slot(limiter, limits, channel.name, settings.notification_max_rate_wait_s, sleep)
    try:
        return _claim_and_send(session, delivery_id, channel, recipient, message)
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
            raise SendLater(
                f"rate limit: next {channel_name} slot in {reservation.wait_s:.2f} s",
                delay_s=reservation.wait_s,
                counts_as_attempt=False,
            )
        sleep(reservation.wait_s)
        waited += reservation.wait_s


def _claim_and_send(
    session: Session, delivery_id: int, channel: NotificationChannel, recipient: str, message: RenderedMessage
) -> DeliveryOutcome:
    if not _claim(session, delivery_id):
        return DeliveryOutcome(delivery_id, "skipped", False, "claimed by another attempt")
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
        raise SendLater(str(exc), delay_s=exc.retry_after_s, counts_as_attempt=True) from exc
    except (ChannelUnavailable, ConnectionError, TimeoutError) as exc:
        _settle(
            session, delivery_id, DeliveryStatus.SENDING, status=DeliveryStatus.PENDING, last_error=str(exc)
        )
        raise
    _settle(
        session,
        delivery_id,
        DeliveryStatus.SENDING,
        status=DeliveryStatus.SENT,
        sent_at=utcnow(),
        last_error=None,
    )
    log.info("notification.sent", delivery_id=delivery_id, channel=channel.name)
    return DeliveryOutcome(delivery_id, DeliveryStatus.SENT, True)


def _claim(session: Session, delivery_id: int) -> bool:
    result = session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id, NotificationDelivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.SENDING,
            claimed_at=utcnow(),
            attempts=NotificationDelivery.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _settle(session: Session, delivery_id: int, from_status: str, **values: object) -> bool:
    result = session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id, NotificationDelivery.status == from_status)
        .values(claimed_at=None, **values)
        .execution_options(synchronize_session=False)
    )
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
