"""Video rotation schedules of AR content: set one (PUT), read it (GET), stop it (DELETE)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from arv.api.deps import CurrentPrincipal, SessionDep, get_owned
from arv.api.schemas import CronText, Id, IdPath, Text16, Text64
from arv.db.models import ARContent, Video, VideoRotationSchedule, utcnow
from arv.services.rotation import InvalidRotationRule, RotationRule, describe_schedule, next_rotation_at

router = APIRouter(prefix="/api/ar-content", tags=["rotation"])

# Videos in one schedule's sequence (a video may come back in it).
MAX_SEQUENCE = 1000


class RotationIn(BaseModel):
    """A rotation schedule: when the content switches video, and through which videos, in order."""

    rotation_type: Text16 = Field(description="daily, weekly, monthly, cron or random")
    time_of_day: Text16 | None = Field(
        default=None, description="HH:MM local time (daily, weekly, monthly, random); default 00:00"
    )
    day_of_week: int | None = Field(default=None, ge=0, le=6, description="0 (Monday) to 6 (Sunday), weekly")
    day_of_month: int | None = Field(
        default=None, ge=1, le=31, description="1 to 31, monthly; a month without that day uses its last day"
    )
    cron_expression: CronText | None = Field(
        default=None, description="five cron fields in local time, for cron (optional for random)"
    )
    timezone: Text64 = Field(default="UTC", description="IANA time zone of the times above")
    video_sequence: list[Id] = Field(
        max_length=MAX_SEQUENCE, description="ids of this content's videos, in playing order"
    )


class RotationOut(BaseModel):
    ar_content_id: int
    rotation_type: str
    time_of_day: str | None
    day_of_week: int | None
    day_of_month: int | None
    cron_expression: str | None
    timezone: str
    video_sequence: list[int]
    current_index: int
    active_video_id: int | None
    next_rotation_at: datetime | None
    last_rotated_at: datetime | None
    description: str


def _unprocessable(sentence: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, sentence)


def _schedule_of(session: SessionDep, content: ARContent) -> VideoRotationSchedule | None:
    return session.scalars(
        select(VideoRotationSchedule).where(VideoRotationSchedule.ar_content_id == content.id)
    ).one_or_none()


def _out(schedule: VideoRotationSchedule, content: ARContent) -> RotationOut:
    return RotationOut(
        ar_content_id=content.id,
        rotation_type=schedule.rotation_type,
        time_of_day=schedule.time_of_day,
        day_of_week=schedule.day_of_week,
        day_of_month=schedule.day_of_month,
        cron_expression=schedule.cron_expression,
        timezone=schedule.timezone,
        video_sequence=[int(v) for v in schedule.video_sequence],
        current_index=schedule.current_index,
        active_video_id=content.active_video_id,
        next_rotation_at=schedule.next_rotation_at,
        last_rotated_at=schedule.last_rotated_at,
        description=describe_schedule(schedule, "en"),
    )


@router.put("/{content_id}/rotation", response_model=RotationOut)
def set_rotation(
    content_id: IdPath, body: RotationIn, session: SessionDep, principal: CurrentPrincipal
) -> RotationOut:
    """Set (or replace) the schedule; the content shows the sequence's video it already shows, or the
    first one, and rotates from the next slot after now."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    try:
        rule = RotationRule.of(body)
    except InvalidRotationRule as exc:
        raise _unprocessable(str(exc)) from None
    if not body.video_sequence:
        raise _unprocessable("video_sequence needs at least one id of a video of this AR content")
    owned = set(
        session.scalars(
            select(Video.id).where(Video.ar_content_id == content.id, Video.id.in_(body.video_sequence))
        )
    )
    foreign = sorted(set(body.video_sequence) - owned)
    if foreign:
        listed = ", ".join(str(v) for v in foreign)
        raise _unprocessable(
            f"video_sequence names {'videos' if len(foreign) > 1 else 'video'} {listed}, which "
            f"{'are' if len(foreign) > 1 else 'is'} not a video of AR content {content.id}; "
            f"upload videos with POST /api/ar-content/{content.id}/videos"
        )
    schedule = _schedule_of(session, content)
    if schedule is None:
        schedule = VideoRotationSchedule(ar_content_id=content.id)
        session.add(schedule)
    index = (
        body.video_sequence.index(content.active_video_id)
        if content.active_video_id in body.video_sequence
        else 0
    )
    schedule.rotation_type = rule.rotation_type
    schedule.timezone = rule.zone.key
    schedule.time_of_day = rule.time_of_day_text
    schedule.day_of_week = rule.day_of_week
    schedule.day_of_month = rule.day_of_month
    schedule.cron_expression = rule.cron_expression
    schedule.video_sequence = list(body.video_sequence)
    schedule.current_index = index
    schedule.next_rotation_at = next_rotation_at(rule, utcnow())
    schedule.is_active = True
    content.active_video_id = body.video_sequence[index]
    session.commit()
    return _out(schedule, content)


@router.get("/{content_id}/rotation", response_model=RotationOut)
def read_rotation(content_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> RotationOut:
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    schedule = _schedule_of(session, content)
    if schedule is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"AR content {content.id} has no rotation schedule; set one with PUT "
            f"/api/ar-content/{content.id}/rotation",
        )
    return _out(schedule, content)


@router.delete("/{content_id}/rotation", status_code=status.HTTP_204_NO_CONTENT)
def stop_rotation(content_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Stop rotating: the content keeps the video it shows now."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    schedule = _schedule_of(session, content)
    if schedule is not None:
        session.delete(schedule)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
