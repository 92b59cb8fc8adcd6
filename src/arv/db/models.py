"""The tables of ARV as SQLAlchemy 2 models; Alembic migrations follow these."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class MarkerStatus(StrEnum):
    """Values of `marker_status`: pending -> processing -> ready, or -> failed."""

    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class RenditionStatus(StrEnum):
    """Values of `Video.rendition_status`: pending -> processing -> ready, or -> failed (the video
    keeps `transcode_error`); `original` marks a video uploaded before renditions existed, which plays
    as uploaded."""

    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    ORIGINAL = "original"


PLAYABLE_RENDITIONS = (RenditionStatus.READY, RenditionStatus.ORIGINAL)


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    telegram_chat_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Per-company overrides of the quota settings (ARV_QUOTA_*); null means the setting applies.
    quota_uploads_per_day: Mapped[int | None] = mapped_column(Integer)
    quota_compiles_in_flight: Mapped[int | None] = mapped_column(Integer)
    quota_transcodes_in_flight: Mapped[int | None] = mapped_column(Integer)
    quota_stored_bytes: Mapped[int | None] = mapped_column(BigInteger)


class UploadCount(Base):
    """Uploads a company made per UTC day, counted as they are accepted: deleting does not give the
    day's quota back."""

    __tablename__ = "upload_counts"
    __table_args__ = (UniqueConstraint("company_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ApiKey(Base):
    """An API key, stored as its SHA-256 hash; `company_id` is null for the operator's admin keys."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # A person's words for the key ("print shop laptop"); never the key itself.
    label: Mapped[str | None] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None]


class UserRole(StrEnum):
    """Values of `User.role`: a company's owner or member, or the operator of the platform."""

    OWNER = "owner"
    MEMBER = "member"
    OPERATOR = "operator"


class User(Base):
    """A person who signs in to the console; `company_id` is null exactly for the operator's users.

    `email` is stored normalised (stripped, lower-cased, arv.services.accounts.normalise_email), so
    the unique key holds for every spelling of one address.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    # An argon2id hash; null until the person sets a password through their one-time link.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in browser: `id` is the SHA-256 of the cookie's random token, which is never stored."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkPurpose(StrEnum):
    """Values of `AccountToken.purpose`: the first password of an invited person, or a new one."""

    INVITE = "invite"
    RESET = "reset"


class AccountToken(Base):
    """A one-time link to set a password, stored as the SHA-256 of its token; `used_at` set once."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class SignInThrottle(Base):
    """Failed sign-ins per normalised e-mail, whether an account has it or not: a lock that only
    known addresses got would tell which addresses have accounts."""

    __tablename__ = "sign_in_throttles"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_status_expires_at", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[datetime | None]
    notify_before_expiry_days: Mapped[int] = mapped_column(Integer, default=7)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarkerFields:
    """Columns shared by everything that is compiled into a MindAR target."""

    image_key: Mapped[str] = mapped_column(String(255))
    image_content_type: Mapped[str] = mapped_column(String(64))
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    # Bytes of the uploaded image, counted against the company's stored-bytes quota.
    image_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    marker_status: Mapped[str] = mapped_column(String(16), default=MarkerStatus.PENDING)
    marker_key: Mapped[str | None] = mapped_column(String(255))
    marker_error: Mapped[str | None] = mapped_column(Text)
    marker_metadata: Mapped[dict[str, Any] | None]
    marker_task_id: Mapped[str | None] = mapped_column(String(36))
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))


class Portrait(MarkerFields, Base):
    __tablename__ = "portraits"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ARContent(MarkerFields, Base):
    __tablename__ = "ar_contents"
    # Room on each page for updated row versions: the periodic passes flip `is_active` and
    # `active_video_id` in place, and with free space those updates stay on the page (HOT) instead of
    # writing a new entry in every index.
    __table_args__ = {"postgresql_with": {"fillfactor": 90}}

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    unique_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    active_video_id: Mapped[int | None] = mapped_column(
        ForeignKey("videos.id", ondelete="SET NULL", use_alter=True)
    )
    qr_png_key: Mapped[str | None] = mapped_column(String(255))
    qr_svg_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship(lazy="joined")


class Video(Base):
    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(primary_key=True)
    ar_content_id: Mapped[int] = mapped_column(ForeignKey("ar_contents.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    poster_key: Mapped[str | None] = mapped_column(String(255))
    poster_error: Mapped[str | None] = mapped_column(Text)
    # What ffprobe read at upload (arv.services.video_probe.VideoProbe.record()); None for videos
    # uploaded before probing.
    probe: Mapped[dict[str, Any] | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    rotation: Mapped[int | None] = mapped_column(Integer)
    # Web renditions (arv.services.transcode). Rows from before them read `original` (the database's
    # default); a new video starts `pending`, and its transcode job is `transcode_task_id`.
    rendition_status: Mapped[str] = mapped_column(
        String(16), default=RenditionStatus.PENDING, server_default=RenditionStatus.ORIGINAL
    )
    transcode_task_id: Mapped[str | None] = mapped_column(String(36))
    # 0-100 while the transcode runs, from ffmpeg's progress output.
    transcode_progress: Mapped[float | None] = mapped_column(Float)
    transcode_error: Mapped[str | None] = mapped_column(Text)
    # The rendition every phone plays (H.264/AAC MP4, at most 1080 px), and a smaller one for slow
    # networks when the video is large enough for it to pay; `renditions` has what ffprobe read of each.
    rendition_key: Mapped[str | None] = mapped_column(String(255))
    small_rendition_key: Mapped[str | None] = mapped_column(String(255))
    renditions: Mapped[list[Any] | None]
    # Set when the original was deleted after transcoding (ARV_KEEP_VIDEO_ORIGINALS=false).
    original_deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeletedContent(Base):
    """The public id of AR content that was deleted, and when: its page answers 410, not 404.
    Nothing else of the content is kept."""

    __tablename__ = "deleted_contents"

    unique_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)


class VideoRotationSchedule(Base):
    __tablename__ = "video_rotation_schedules"
    __table_args__ = (Index("ix_rotation_active_next", "is_active", "next_rotation_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ar_content_id: Mapped[int] = mapped_column(ForeignKey("ar_contents.id", ondelete="CASCADE"), unique=True)
    rotation_type: Mapped[str] = mapped_column(String(16))
    time_of_day: Mapped[str | None] = mapped_column(String(8))
    day_of_week: Mapped[int | None] = mapped_column(Integer)
    day_of_month: Mapped[int | None] = mapped_column(Integer)
    cron_expression: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    video_sequence: Mapped[list[Any]]
    current_index: Mapped[int] = mapped_column(Integer, default=0)
    next_rotation_at: Mapped[datetime | None]
    last_rotated_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NotificationType(StrEnum):
    EXPIRY_WARNING = "expiry_warning"
    EXPIRED = "expired"
    MARKER_FAILED = "marker_failed"


class Channel(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"


class DeliveryStatus(StrEnum):
    """`pending` -> `sending` (claimed by one attempt) -> `sent`, or -> `failed` with `last_error`."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    """The outbox of messages to a company; `dedupe_key` makes each event notify once."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_company_created", "company_id", "created_at"),
        Index("ix_notifications_fanned_out_at", "fanned_out_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    notification_type: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ar_content_id: Mapped[int | None] = mapped_column(ForeignKey("ar_contents.id", ondelete="CASCADE"))
    # Not the words: those are rendered from the templates and the facts in `payload`
    # (services/notify/messages.py). The columns stay in the schema, written empty.
    subject: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Null until its deliveries to the company's channels exist; rows inserted set-based start null.
    fanned_out_at: Mapped[datetime | None]

    deliveries: Mapped[list[NotificationDelivery]] = relationship(
        back_populates="notification", order_by="NotificationDelivery.id", lazy="selectin"
    )


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (UniqueConstraint("notification_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    # When the attempt now sending took it (status "sending"); the exactly-once claim.
    claimed_at: Mapped[datetime | None]
    # The job whose attempt took that claim: a later attempt of the same job that finds it knows its
    # own earlier attempt stopped mid-send (outcome unknown), not that someone else is sending.
    claimed_by_job: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    notification: Mapped[Notification] = relationship(back_populates="deliveries")


class ContentView(Base):
    """Views of the public page, one counter per content and day."""

    __tablename__ = "content_views"
    __table_args__ = (UniqueConstraint("ar_content_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ar_content_id: Mapped[int] = mapped_column(ForeignKey("ar_contents.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer, default=0)


class JobStatus(StrEnum):
    """Values of `Job.status`: queued -> running -> succeeded, or -> failed; running -> queued again
    when a transient failure retries or the worker's lease lapses."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    """A unit of background work; the database copy is the truth, the broker message only a wake-up.

    `id` is also the Celery task id of every message published for it.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_available_at", "status", "available_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # The job kind's name, which is also the Celery task that runs it (arv.jobs.kinds).
    kind: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(32))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    args: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    # Claims so far; also the token of the current claim: only the attempt it counts may settle.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Times a worker stopped renewing its lease (died, killed, cut off): too many fails the job.
    lost_leases: Mapped[int] = mapped_column(Integer, default=0)
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_published_at: Mapped[datetime | None]
    # Renewed by the running worker's heartbeat; once past, the sweep takes the job back.
    lease_expires_at: Mapped[datetime | None]
    # Set at the first transient failure: transient failures retry until then, then the job fails.
    retry_until: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class TaskRun(Base):
    """When each periodic task (the job sweep among them) last started and finished, by the
    database's clock: what /healthz and /metrics report, and how the sweep takes turns."""

    __tablename__ = "task_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, default=0)
