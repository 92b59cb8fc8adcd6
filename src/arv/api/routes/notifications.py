"""Notifications: the caller's outbox, newest first, and resending what failed.

The `subject` and `message` of each are rendered here by the renderer its e-mail and Telegram message
come from, so the API lists what was (or will be) sent, word for word."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from arv.api.deps import CurrentPrincipal, SessionDep, get_owned
from arv.api.schemas import NotificationOut
from arv.db.models import DeliveryStatus, Notification, NotificationDelivery, NotificationType
from arv.services.notify.messages import notification_words
from arv.services.notify.outbox import resend_failed

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

DELIVERY_STATUSES = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
)
TYPES = (NotificationType.EXPIRY_WARNING, NotificationType.EXPIRED, NotificationType.MARKER_FAILED)


@router.get("", response_model=list[NotificationOut])
def list_notifications(
    session: SessionDep,
    principal: CurrentPrincipal,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            pattern=f"^({'|'.join(DELIVERY_STATUSES)})$",
            description="only notifications with a delivery in this state",
        ),
    ] = None,
    notification_type: Annotated[str | None, Query(pattern=f"^({'|'.join(TYPES)})$")] = None,
    company_id: Annotated[int | None, Query(description="admin keys only: one company's")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    before_id: Annotated[
        int | None, Query(description="cursor: only notifications older than this id (stable under inserts)")
    ] = None,
) -> list[NotificationOut]:
    query = select(Notification).order_by(Notification.id.desc())  # ids grow with time: newest first
    if not principal.is_admin:
        query = query.where(Notification.company_id == principal.company_id)
    elif company_id is not None:
        query = query.where(Notification.company_id == company_id)
    if notification_type is not None:
        query = query.where(Notification.notification_type == notification_type)
    if status_ is not None:
        query = query.where(
            select(NotificationDelivery.id)
            .where(
                NotificationDelivery.notification_id == Notification.id,
                NotificationDelivery.status == status_,
            )
            .exists()
        )
    if before_id is not None:
        query = query.where(Notification.id < before_id)
    return [_notification_out(session, n) for n in session.scalars(query.limit(limit).offset(offset))]


@router.get("/{notification_id}", response_model=NotificationOut)
def read_notification(
    notification_id: int, session: SessionDep, principal: CurrentPrincipal
) -> NotificationOut:
    notification = get_owned(session, principal, Notification, notification_id, "notification")
    return _notification_out(session, notification)


@router.post(
    "/{notification_id}/resend", status_code=status.HTTP_202_ACCEPTED, response_model=NotificationOut
)
def resend_notification(
    notification_id: int, session: SessionDep, principal: CurrentPrincipal
) -> NotificationOut:
    """Queue the failed deliveries of the notification again; sent ones are never sent twice."""
    notification = get_owned(session, principal, Notification, notification_id, "notification")
    if not resend_failed(session, notification):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"nothing to resend: no delivery of notification {notification_id} has failed",
        )
    session.commit()
    session.expire_all()  # the deliveries changed in SQL; read them back as they are now
    return _notification_out(session, notification)


def _notification_out(session: Session, notification: Notification) -> NotificationOut:
    """`notification` with the words its channels send."""
    words = notification_words(session, notification)
    return NotificationOut.model_validate(notification).model_copy(
        update={"subject": words.subject, "message": words.text}
    )
