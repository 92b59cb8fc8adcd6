"""Project expiry: one warning before a project expires, deactivation when it has, reactivation on renewal.

Both passes are a few set-based statements whose cost follows the rows that change, and both are safe
to run twice at once. Projects change state with conditional updates (`status` is checked in the same
statement that changes it) over rows locked with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so a second
worker skips what the first holds and finds nothing left after it commits; SQLite serialises writers.
Notifications carry a unique `dedupe_key` per (type, project, expiry date), so a warning or an expiry
notice is written once per date, and moving `expires_at` (a renewal) allows a new one.

The rows written here are the notifications outbox, each with the facts of its event and no words (the
templates of `arv.services.notify.messages` say them); the notifications service fans out their
deliveries (e-mail, Telegram).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    and_,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from arv.db.models import ARContent, Company, Notification, Project, utcnow

EXPIRY_WARNING = "expiry_warning"
EXPIRED = "expired"
ACTIVE = "active"


def dedupe_key(notification_type: str, project_id: int, expires_at: datetime) -> str:
    """The key that makes a notification about one project's expiry date unique (whole UTC seconds)."""
    return f"{notification_type}:{project_id}:{int(expires_at.astimezone(UTC).timestamp())}"


@dataclass(frozen=True)
class WarningPassResult:
    warnings_created: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ExpiryPassResult:
    projects_expired: int
    contents_deactivated: int
    expired_notifications_created: int
    projects_reactivated: int
    contents_reactivated: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Dialect:
    """The few expressions that PostgreSQL and SQLite spell differently."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def epoch_seconds(self, column: SQLColumnExpression[Any]) -> ColumnElement[int]:
        if self.postgres:
            return cast(func.floor(func.extract("epoch", column)), Integer)
        return cast(func.strftime("%s", column), Integer)

    def timestamp_fact(self, column: SQLColumnExpression[Any]) -> ColumnElement[str]:
        """'2027-01-31T00:00:00+00:00', as `messages.timestamp_fact` spells a moment in a payload."""
        if self.postgres:
            return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
        return func.strftime("%Y-%m-%dT%H:%M:%S+00:00", column)

    def warning_window_open(self, now: datetime) -> ColumnElement[bool]:
        """`expires_at - notify_before_expiry_days days <= now`, with whole 24-hour days."""
        days = Project.notify_before_expiry_days
        if self.postgres:
            # Hours, not days: adding days to a timestamptz follows the session's time zone.
            return Project.expires_at <= literal(now, Project.expires_at.type) + func.make_interval(
                0, 0, 0, 0, days * 24
            )
        return func.julianday(Project.expires_at) - days <= func.julianday(
            literal(now, Project.expires_at.type)
        )

    def json_object(self, **fields: SQLColumnExpression[Any]) -> ColumnElement[Any]:
        args: list[object] = []
        for name, value in fields.items():
            args += [literal_column(f"'{name}'"), value]
        return (func.json_build_object if self.postgres else func.json_object)(*args)

    def id_list(self, ids: Sequence[int]) -> Select[tuple[int]]:
        """A one-column subquery of `ids`, sent as one parameter however many there are."""
        if self.postgres:
            return select(func.unnest(literal(list(ids), postgresql.ARRAY(Integer))).column_valued())
        return select(func.json_each(json.dumps(list(ids))).table_valued("value").c.value)

    def insert_notifications(self) -> Any:
        return (postgresql.insert if self.postgres else sqlite.insert)(Notification)


def _insert_notifications(
    session: Session,
    dialect: _Dialect,
    notification_type: str,
    projects: Select[tuple[int]] | None,
    where: ColumnElement[bool],
    now: datetime,
) -> int:
    """INSERT ... SELECT one notification per matching project, skipping (type, project, date) keys that
    exist already; returns how many were written.

    Each row keeps the facts of its event (`messages.FACTS`); its words are rendered from them and the
    templates when it is sent or listed, never spelled here.
    """
    key = (
        literal(f"{notification_type}:")
        + cast(Project.id, String)
        + ":"
        + cast(dialect.epoch_seconds(Project.expires_at), String)
    )
    payload = dialect.json_object(
        language=Company.language,
        company_name=Company.name,
        project_name=Project.name,
        expires_at=dialect.timestamp_fact(Project.expires_at),
        content_title=null(),
        portrait_id=null(),
        reason=null(),
    )
    rows = (
        select(
            Project.company_id,
            literal(notification_type),
            Project.id,
            literal(""),
            literal(""),
            payload,
            key,
            literal(now, Notification.created_at.type),
        )
        .join(Company, Company.id == Project.company_id)
        .where(where)
    )
    if projects is not None:
        rows = rows.where(Project.id.in_(projects))
    statement = (
        dialect.insert_notifications()
        .from_select(
            [
                Notification.company_id,
                Notification.notification_type,
                Notification.project_id,
                Notification.subject,
                Notification.message,
                Notification.payload,
                Notification.dedupe_key,
                Notification.created_at,
            ],
            rows,
        )
        .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        .execution_options(preserve_rowcount=True)
    )
    return _rowcount(session, statement)


def check_expiring_projects(session: Session, *, now: datetime | None = None) -> WarningPassResult:
    """Write one expiry warning for each active project whose expiry date is within its
    `notify_before_expiry_days` and has not been warned about yet."""
    now = now or utcnow()
    dialect = _Dialect(session.get_bind().dialect.name)
    in_window = and_(
        Project.status == ACTIVE,
        Project.expires_at > now,
        Project.notify_before_expiry_days > 0,
        dialect.warning_window_open(now),
    )
    created = _insert_notifications(session, dialect, EXPIRY_WARNING, None, in_window, now)
    return WarningPassResult(created)


def _rowcount(session: Session, statement: Any) -> int:
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount


def _claim(session: Session, condition: ColumnElement[bool], new_status: str, now: datetime) -> list[int]:
    """Set `new_status` on the projects matching `condition` that no other worker holds; their ids."""
    held_elsewhere_skipped = (
        select(Project.id).where(condition).with_for_update(skip_locked=True).scalar_subquery()
    )
    statement = (
        update(Project)
        .where(Project.id.in_(held_elsewhere_skipped), condition)
        .values(status=new_status, updated_at=now)
        .returning(Project.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(statement))


def deactivate_expired_content(session: Session, *, now: datetime | None = None) -> ExpiryPassResult:
    """Expire active projects past `expires_at` (their content stops playing, one `expired` notification
    per expiry date) and reactivate expired projects that were renewed."""
    now = now or utcnow()
    dialect = _Dialect(session.get_bind().dialect.name)

    expired_ids = _claim(session, and_(Project.status == ACTIVE, Project.expires_at <= now), EXPIRED, now)
    contents_deactivated = notified = 0
    if expired_ids:
        projects = dialect.id_list(expired_ids)
        contents_deactivated = _rowcount(
            session,
            update(ARContent)
            .where(ARContent.project_id.in_(projects), ARContent.is_active.is_(True))
            .values(is_active=False, updated_at=now)
            .execution_options(synchronize_session=False),
        )
        notified = _insert_notifications(
            session, dialect, EXPIRED, dialect.id_list(expired_ids), Project.status == EXPIRED, now
        )

    renewed = and_(Project.status == EXPIRED, or_(Project.expires_at.is_(None), Project.expires_at > now))
    renewed_ids = _claim(session, renewed, ACTIVE, now)
    contents_reactivated = 0
    if renewed_ids:
        contents_reactivated = _rowcount(
            session,
            update(ARContent)
            .where(ARContent.project_id.in_(dialect.id_list(renewed_ids)), ARContent.is_active.is_(False))
            .values(is_active=True, updated_at=now)
            .execution_options(synchronize_session=False),
        )
    return ExpiryPassResult(
        projects_expired=len(expired_ids),
        contents_deactivated=contents_deactivated,
        expired_notifications_created=notified,
        projects_reactivated=len(renewed_ids),
        contents_reactivated=contents_reactivated,
    )
