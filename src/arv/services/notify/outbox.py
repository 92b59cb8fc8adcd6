"""The outbox: notifications written once per event, fanned out to the company's channels as jobs.

A notification is written once per `dedupe_key` (a second write of the same event does nothing).
Fan-out gives it one delivery per channel the company has (e-mail to `contact_email`, Telegram to
`telegram_chat_id`) and one job per delivery on the notifications queue. Rows inserted set-based by
the periodic passes start without deliveries; `fan_out_notifications` gives them theirs, set-based.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import Select, and_, func, literal, select, update
from sqlalchemy.orm import Session

from arv.db.dialect import upsert
from arv.db.models import (
    ARContent,
    Channel,
    Company,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationType,
    Portrait,
    utcnow,
)
from arv.jobs import store
from arv.services.notify import messages
from arv.services.notify.delivery import DELIVER

log = structlog.get_logger(__name__)


# Notifications fanned out per statement: bounds the IN lists and the size of one publish burst.
FAN_OUT_BATCH = 1000


def create_notification(
    session: Session,
    *,
    company_id: int,
    notification_type: str,
    dedupe_key: str,
    project_id: int | None = None,
    ar_content_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Notification | None:
    """Write the notification of one event with its deliveries and their jobs, in the caller's
    transaction; None when this event (`dedupe_key`) was already notified."""
    if not messages.has_templates(notification_type):
        raise ValueError(f"no templates for notification type {notification_type!r}")
    company = session.get(Company, company_id)
    if company is None:
        raise ValueError(f"there is no company {company_id}")
    # The facts of the event, kept with it: its words are rendered from them wherever they are read.
    facts = messages.event_facts(
        session, company=company, project_id=project_id, ar_content_id=ar_content_id, payload=payload
    )
    inserted = session.execute(
        upsert(session, Notification)
        .values(
            company_id=company_id,
            notification_type=notification_type,
            project_id=project_id,
            ar_content_id=ar_content_id,
            subject="",
            message="",
            payload=facts,
            dedupe_key=dedupe_key,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Notification.id)
    ).scalar_one_or_none()
    if inserted is None:
        return None
    _fan_out(session, [inserted])
    return session.get(Notification, inserted)


def fan_out_notifications(session: Session, *, batch: int = FAN_OUT_BATCH) -> int:
    """Give every notification written without deliveries its deliveries and jobs; returns how many
    deliveries were created. Safe to run concurrently and repeatedly (row locks, unique keys)."""
    created = 0
    while True:
        query: Select[int] = (
            select(Notification.id)
            .where(Notification.fanned_out_at.is_(None))
            .order_by(Notification.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        ids = list(session.scalars(query))
        if not ids:
            return created
        created += _fan_out(session, ids)


def _fan_out(session: Session, notification_ids: list[int]) -> int:
    now = utcnow()
    new_deliveries: list[tuple[int, int]] = []
    addresses = ((Channel.EMAIL, Company.contact_email), (Channel.TELEGRAM, Company.telegram_chat_id))
    columns = ["notification_id", "channel", "recipient", "status", "attempts", "created_at"]
    for channel, address in addresses:
        rows = (
            select(
                Notification.id,
                literal(channel),
                address,
                literal(DeliveryStatus.PENDING),
                literal(0),
                literal(now, type_=NotificationDelivery.created_at.type),
            )
            .join(Company, Company.id == Notification.company_id)
            .where(
                Notification.id.in_(notification_ids),
                address.is_not(None),
                func.trim(address) != "",
            )
        )
        statement = (
            upsert(session, NotificationDelivery)
            .from_select(columns, rows)
            .on_conflict_do_nothing(index_elements=["notification_id", "channel"])
            .returning(NotificationDelivery.id, NotificationDelivery.notification_id)
        )
        new_deliveries.extend((row[0], row[1]) for row in session.execute(statement))
    session.execute(
        update(Notification)
        .where(and_(Notification.id.in_(notification_ids), Notification.fanned_out_at.is_(None)))
        .values(fanned_out_at=now)
        .execution_options(synchronize_session=False)
    )
    if new_deliveries:
        company_of = dict(
            session.execute(
                select(Notification.id, Notification.company_id).where(
                    Notification.id.in_({n for _, n in new_deliveries})
                )
            ).all()
        )
        enqueue_deliveries(session, [(d, company_of[n]) for d, n in new_deliveries])
    return len(new_deliveries)


def enqueue_deliveries(session: Session, deliveries: list[tuple[int, int]]) -> list[str]:
    """One delivery job per (delivery id, company id), published after the caller commits."""
    return store.enqueue_many(
        session,
        DELIVER,
        [({"delivery_id": delivery_id}, company_id) for delivery_id, company_id in deliveries],
    )


def resend_failed(session: Session, notification: Notification) -> list[NotificationDelivery]:
    """Put the notification's failed deliveries back to pending with a new job each; returns them.

    A delivery already sent is never among them: resending cannot send anything twice.
    """
    ids = list(
        session.scalars(
            update(NotificationDelivery)
            .where(
                NotificationDelivery.notification_id == notification.id,
                NotificationDelivery.status == DeliveryStatus.FAILED,
            )
            .values(status=DeliveryStatus.PENDING, claimed_at=None)
            .returning(NotificationDelivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not ids:
        return []
    enqueue_deliveries(session, [(delivery_id, notification.company_id) for delivery_id in ids])
    return list(
        session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.id.in_(ids))
            .execution_options(populate_existing=True)
        )
    )


def notify_marker_failed(
    session: Session, subject: Portrait | ARContent, *, job_id: str, reason: str
) -> None:
    """Tell the company that the marker of `subject` failed for good (once per failed job).

    Runs in a savepoint: a notification that cannot be written must not undo the failure it reports.
    """
    content = subject if isinstance(subject, ARContent) else None
    try:
        with session.begin_nested():
            create_notification(
                session,
                company_id=subject.company_id,
                notification_type=NotificationType.MARKER_FAILED,
                dedupe_key=f"marker_failed:{job_id}",
                project_id=content.project_id if content is not None else None,
                ar_content_id=content.id if content is not None else None,
                payload={"reason": reason, **({} if content is not None else {"portrait_id": subject.id})},
            )
    except Exception as exc:  # noqa: BLE001 - logged; the marker's own failure record stands
        log.warning("notification.marker_failed_not_written", job_id=job_id, error=str(exc))
