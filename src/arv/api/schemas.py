"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

# The bounded kinds of input, re-exported for the routes: see arv.api.fields.
from arv.api.fields import (
    CronText,
    Email,
    Id,
    IdPath,
    IdQuery,
    Instant,
    PageLimit,
    PageOffset,
    TaskIdPath,
    Text16,
    Text64,
    Text100,
    Text200,
)

__all__ = [
    "CronText",
    "Email",
    "Id",
    "IdPath",
    "IdQuery",
    "Instant",
    "PageLimit",
    "PageOffset",
    "TaskIdPath",
    "Text16",
    "Text64",
    "Text100",
    "Text200",
]


def refuse_null(value: object, info: ValidationInfo) -> object:
    """For a PATCH field that may be left out but not sent as null."""
    if value is None:
        raise ValueError(f"cannot be null; leave {info.field_name} out to keep it as it is")
    return value


class CompanyCreate(BaseModel):
    name: Text200
    contact_email: Email | None = None
    telegram_chat_id: Text64 | None = None
    language: str = Field(default="en", pattern="^(en|ru)$")


class CompanyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    contact_email: str | None
    telegram_chat_id: str | None
    language: str
    created_at: datetime
    # The company's own quota values; null means the setting (ARV_QUOTA_*) applies, 0 unlimited.
    quota_uploads_per_day: int | None = None
    quota_compiles_in_flight: int | None = None
    quota_transcodes_in_flight: int | None = None
    quota_stored_bytes: int | None = None


class ProjectCreate(BaseModel):
    company_id: Id | None = None
    name: Text200
    expires_at: Instant | None = None
    notify_before_expiry_days: int | None = Field(default=None, ge=0, le=365)


class ProjectUpdate(BaseModel):
    """Only the fields sent change. `expires_at: null` removes the expiry; `name` and
    `notify_before_expiry_days` cannot be null (leave them out to keep them)."""

    name: Text200 | None = None
    expires_at: Instant | None = None
    notify_before_expiry_days: int | None = Field(default=None, ge=0, le=365)

    _not_null = field_validator("name", "notify_before_expiry_days", mode="before")(refuse_null)


class CompanySettingsUpdate(BaseModel):
    """What a company sets for itself: where its notifications go and the language of its pages and
    messages. Only the fields sent change; null clears the contact e-mail or the Telegram chat."""

    model_config = ConfigDict(extra="forbid")
    contact_email: Email | None = None
    telegram_chat_id: Text64 | None = None
    language: str | None = Field(default=None, pattern="^(en|ru)$")

    _not_null = field_validator("language", mode="before")(refuse_null)


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    company_id: int
    name: str
    status: str
    expires_at: datetime | None
    notify_before_expiry_days: int
    created_at: datetime


class MarkerOut(BaseModel):
    id: int
    company_id: int
    marker_status: str
    marker_url: str | None
    marker_error: str | None
    marker_metadata: dict[str, Any] | None
    task_id: str | None
    image_url: str
    image_width: int
    image_height: int
    created_at: datetime
    updated_at: datetime


class PortraitOut(MarkerOut):
    pass


class ARContentOut(MarkerOut):
    project_id: int
    title: str
    unique_id: str
    is_active: bool
    active_video_id: int | None
    public_url: str


class ARContentUpdate(BaseModel):
    """Only the fields sent change: the title, or the video the content plays now."""

    model_config = ConfigDict(extra="forbid")
    title: Text200 | None = None
    active_video_id: Id | None = None

    _not_null = field_validator("title", "active_video_id", mode="before")(refuse_null)


class RenditionOut(BaseModel):
    """One web rendition of a video, as ffprobe read it once made."""

    label: str
    url: str
    width: int
    height: int
    duration_s: float
    frame_rate: float | None = None
    audio_codec: str | None = None
    size_bytes: int


class VideoOut(BaseModel):
    id: int
    ar_content_id: int
    content_type: str
    size_bytes: int
    filename: str | None
    video_url: str
    created_at: datetime
    # What ffprobe read at upload (None for videos stored before probing); rotation is the display
    # rotation in degrees, [0, 360).
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    rotation: int | None = None
    frame_rate: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    # Web renditions (README "Web renditions"): pending -> processing -> ready, or failed with
    # `transcode_error`; `original` for a video uploaded before renditions existed (it plays as
    # uploaded). `transcode_progress` is 0-100 while it runs. `video_url` is the original, or the main
    # rendition once the original was deleted (ARV_KEEP_VIDEO_ORIGINALS=false, `original_kept` false).
    rendition_status: str = "original"
    transcode_task_id: str | None = None
    transcode_progress: float | None = None
    transcode_error: str | None = None
    rendition_url: str | None = None
    renditions: list[RenditionOut] = []
    original_kept: bool = True


class TaskAccepted(BaseModel):
    task_id: str


class TaskOut(BaseModel):
    task_id: str
    state: str
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    created_at: datetime
    finished_at: datetime | None


class NotificationDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    channel: str
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    company_id: int
    notification_type: str
    project_id: int | None
    ar_content_id: int | None
    subject: str
    message: str
    deliveries: list[NotificationDeliveryOut]
    created_at: datetime


class ErrorOut(BaseModel):
    """Every refusal: a sentence a person can act on (some answers add fields, e.g. the viewer's `state`)."""

    model_config = ConfigDict(extra="allow")
    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A request the API could not take: `detail` says what to change, `errors` lists each field."""

    model_config = ConfigDict(extra="allow")
    detail: str
    errors: list[FieldError] = []


# The refusals any operation may answer, documented on every one of them (FastAPI's own 422 schema,
# a list under `detail`, is not what this API sends).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": words}
    for code, words in (
        (400, "Bad request"),
        (401, "No API key, or not a valid one"),
        (403, "This key may not do this"),
        (404, "Not found, or not this key's to see"),
        (409, "Conflicts with the current state"),
        (410, "Gone"),
        (413, "Too large"),
        (415, "Not a kind of file this takes"),
        (422, "Not a valid request: detail says what to change"),
        (429, "Too many: wait as Retry-After says"),
        (503, "A backend is unavailable right now; try again"),
    )
}


# ---- API keys (GET/POST/DELETE /api/keys) ----------------------------------------------------------


class KeyCreate(BaseModel):
    label: Text100 | None = Field(
        default=None, description="a person's words for the key, e.g. 'print shop laptop'"
    )
    company_id: Id | None = Field(
        default=None, description="admin keys only: the company the new key acts for"
    )
    admin: bool = Field(default=False, description="admin keys only: a new admin key (no company_id)")

    @model_validator(mode="after")
    def _admin_or_company(self) -> KeyCreate:
        if self.admin and self.company_id is not None:
            raise PydanticCustomError(
                "admin_or_company", "an admin key belongs to no company: send admin or company_id, not both"
            )
        return self


class KeyOut(BaseModel):
    """A key as listed: never its hash nor the key itself, only the first characters (`prefix`)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    prefix: str
    label: str | None
    company_id: int | None
    is_admin: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself, shown this once: ARV keeps only its hash")


# ---- quotas ---------------------------------------------------------------------------------------


class CompanyQuotasUpdate(BaseModel):
    """The operator's per-company quota values: a number replaces the setting (0 is unlimited), null
    goes back to the setting, a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")
    quota_uploads_per_day: int | None = Field(default=None, ge=0, le=1_000_000)
    quota_compiles_in_flight: int | None = Field(default=None, ge=0, le=10_000)
    quota_transcodes_in_flight: int | None = Field(default=None, ge=0, le=10_000)
    # Up to 1 PiB.
    quota_stored_bytes: int | None = Field(default=None, ge=0, le=2**50)


class QuotaUsageOut(BaseModel):
    limit: int | None = Field(description="the company's limit; null when unlimited")
    used: int
    overridden: bool = Field(description="true when the company has its own limit, not the setting")


class CompanyUsageOut(BaseModel):
    company_id: int
    uploads_per_day: QuotaUsageOut
    compiles_in_flight: QuotaUsageOut
    transcodes_in_flight: QuotaUsageOut
    stored_bytes: QuotaUsageOut
