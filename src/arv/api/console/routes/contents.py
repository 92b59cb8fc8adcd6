"""One AR content in the console: its marker (live), the quality picture, the QR code and print
sheets, the public link, its videos, the rotation schedule, the views, and the actions on them.

Every read and every change goes through the API's own operation with the visitor's principal, so
a record of another company is a 404 here exactly as it is there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from arv.api.console.charts import views_chart
from arv.api.console.forms import FormRefused, body, refusal
from arv.api.console.pages import render, words_for
from arv.api.console.routes.projects import SCRIPT_HEADER, VIDEO_TYPES
from arv.api.console.visitors import CsrfChecked, CurrentVisitor, Visitor
from arv.api.console.words import Words
from arv.api.deps import SessionDep, SettingsDep, StorageDep, get_owned
from arv.api.presenters import public_url
from arv.api.routes import ar_content as ar_content_api
from arv.api.routes import previews as previews_api
from arv.api.routes import qr_codes as qr_api
from arv.api.routes import rotation as rotation_api
from arv.api.schemas import ARContentUpdate, IdPath
from arv.db.models import ARContent, MarkerStatus, Project, Video, VideoRotationSchedule
from arv.services import marker_quality, print_sheets, public_content, rotation
from arv.storage import ObjectNotFound, Storage
from arv.storage.base import content_disposition

router = APIRouter(prefix="/console/contents", include_in_schema=False)

# Days the views chart covers.
VIEW_DAYS = 30
# The quality picture's longest side, in pixels.
QUALITY_PICTURE_PX = 1024
_ZONES = sorted(available_timezones())


def _content(session: Session, visitor: Visitor, content_id: int) -> ARContent:
    return get_owned(session, visitor.principal, ARContent, content_id, "AR content")


def _quality_context(content: ARContent, words: Words, storage: Storage) -> dict[str, Any]:
    report = content.marker_metadata if content.marker_status == MarkerStatus.READY else None
    width, height = content.image_width, content.image_height
    scale = min(1.0, QUALITY_PICTURE_PX / max(width, height, 1))
    weak_words: list[str] = []
    if report and content.marker_key:
        try:
            regions = marker_quality.weak_regions(storage.get(content.marker_key), width, height)
        except ObjectNotFound:
            regions = []
        weak_words = [words.area.format(area=area) for area in weak_areas(regions, width, height, words)]
    return {
        "content": content,
        "report": report,
        "picture_width": max(1, round(width * scale)),
        "picture_height": max(1, round(height * scale)),
        "weak_words": weak_words,
    }


def weak_areas(regions: list[dict[str, Any]], width: int, height: int, words: Words) -> list[str]:
    """The parts of the photo with few feature points, named as a person would ("top left"...):
    each weak cell by where its centre falls in a 3 x 3 division of the photo."""
    names = words.areas.split(",")
    found = []
    for cell in regions:
        row = min(2, int(3 * (cell["y"] + cell["height"] / 2) / max(height, 1)))
        column = min(2, int(3 * (cell["x"] + cell["width"] / 2) / max(width, 1)))
        found.append(names[row * 3 + column])
    return list(dict.fromkeys(found))


def _rotation_context(session: Session, content: ARContent, words: Words) -> dict[str, Any]:
    schedule = session.scalars(
        select(VideoRotationSchedule).where(VideoRotationSchedule.ar_content_id == content.id)
    ).one_or_none()
    form = {
        "rotation_type": "daily",
        "time_of_day": "09:00",
        "day_of_week": 0,
        "day_of_month": 1,
        "cron_expression": "",
        "timezone": "UTC",
        "video_sequence": [],
    }
    if schedule is None:
        return {"rotation": None, "rotation_form": form}
    form.update(
        rotation_type=schedule.rotation_type,
        time_of_day=schedule.time_of_day or form["time_of_day"],
        day_of_week=schedule.day_of_week if schedule.day_of_week is not None else 0,
        day_of_month=schedule.day_of_month or 1,
        cron_expression=schedule.cron_expression or "",
        timezone=schedule.timezone,
        video_sequence=[int(v) for v in schedule.video_sequence],
    )
    shown = {
        "description": rotation.describe_schedule(schedule, words.language),
        "next_times": rotation.next_rotation_times(schedule, count=5),
    }
    return {"rotation": shown, "rotation_form": form}


def live_state(content: ARContent, videos: Sequence[Video]) -> str:
    """What the page's live parts show, in one string: the marker's status, whether the QR code and
    thumbnail exist, and each video's rendition and poster. The page's script fetches those parts
    again when the status route's string differs from the one the page was rendered with."""
    parts = [content.marker_status, str(bool(content.qr_png_key))]
    parts += [f"{v.id}:{v.rendition_status}:{bool(v.poster_key)}" for v in sorted(videos, key=lambda v: v.id)]
    return ",".join(parts)


def content_page(
    request: Request,
    session: Session,
    visitor: Visitor,
    settings: SettingsDep,
    storage: Storage,
    content_id: IdPath,
    *,
    error: str | None = None,
    code: int = 200,
) -> Response:
    words = words_for(request, visitor)
    content = _content(session, visitor, content_id)
    project = session.get(Project, content.project_id)
    videos = session.scalars(
        select(Video).where(Video.ar_content_id == content.id).order_by(Video.id.desc())
    ).all()
    views = public_content.views_per_day(session, content.id, days=VIEW_DAYS)
    return render(
        request,
        "content.html",
        visitor,
        status_code=code,
        project=project,
        public_url=public_url(content, settings),
        videos=videos,
        video_types=VIDEO_TYPES,
        max_upload_bytes=settings.max_upload_bytes,
        sheet_sizes=[(size, words["sheet_" + size]) for size in print_sheets.SHEET_SIZES],
        views=views,
        views_total=sum(count for _, count in views),
        views_chart=Markup(views_chart(views, words)),
        live_state=live_state(content, videos),
        timezones=_ZONES,
        error=error,
        **_quality_context(content, words, storage),
        **_rotation_context(session, content, words),
    )


@router.get("/{content_id}", response_class=HTMLResponse)
def content(
    request: Request,
    content_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    return content_page(request, session, visitor, settings, storage, content_id)


@router.get("/{content_id}/status")
def content_status(
    request: Request, content_id: IdPath, session: SessionDep, visitor: CurrentVisitor
) -> JSONResponse:
    """What the page's script polls: the marker's status and each video's, in the page's words."""
    words = words_for(request, visitor)
    content = _content(session, visitor, content_id)
    videos = session.scalars(select(Video).where(Video.ar_content_id == content.id)).all()
    return JSONResponse(
        {
            "marker_status": content.marker_status,
            "marker_label": words["marker_" + content.marker_status],
            "settled": content.marker_status in (MarkerStatus.READY, MarkerStatus.FAILED),
            "qr_ready": content.qr_png_key is not None,
            "live_state": live_state(content, videos),
            "videos": [
                {
                    "id": v.id,
                    "rendition_status": v.rendition_status,
                    "poster_pending": v.poster_key is None and v.poster_error is None,
                    "label": words["rendition_" + v.rendition_status]
                    + (
                        f" {round(v.transcode_progress)}%"
                        if v.transcode_progress is not None and v.rendition_status == "processing"
                        else ""
                    ),
                }
                for v in videos
            ],
        },  # fmt: skip
        headers={"Cache-Control": "no-store"},
    )


def _stored(storage: Storage, key: str | None, missing: str) -> bytes:
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing, headers={"Retry-After": "5"})
    try:
        return storage.get(key)
    except ObjectNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing) from exc


@router.get("/{content_id}/quality.png")
def quality_picture(
    content_id: IdPath, session: SessionDep, visitor: CurrentVisitor, storage: StorageDep
) -> Response:
    """The photo with the marker's feature points on it and its weak parts shaded."""
    content = _content(session, visitor, content_id)
    if content.marker_status != MarkerStatus.READY:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the marker is not ready yet")
    image = _stored(storage, content.image_key, "the photo is missing from storage")
    mind = _stored(storage, content.marker_key, "the marker is missing from storage")
    png = marker_quality.render_quality_picture(image, mind, max_px=QUALITY_PICTURE_PX)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{content_id}/thumbnail.jpg")
def thumbnail(
    content_id: IdPath, session: SessionDep, visitor: CurrentVisitor, storage: StorageDep
) -> Response:
    return previews_api.content_thumbnail(content_id, session, visitor.principal, storage)


@router.get("/{content_id}/qr.png")
def qr_png(content_id: IdPath, session: SessionDep, visitor: CurrentVisitor, storage: StorageDep) -> Response:
    return qr_api.qr_png(content_id, session, visitor.principal, storage)


@router.get("/{content_id}/qr.svg")
def qr_svg(content_id: IdPath, session: SessionDep, visitor: CurrentVisitor, storage: StorageDep) -> Response:
    return qr_api.qr_svg(content_id, session, visitor.principal, storage)


@router.get("/{content_id}/videos/{video_id}/poster.jpg")
def poster(
    content_id: IdPath, video_id: IdPath, session: SessionDep, visitor: CurrentVisitor, storage: StorageDep
) -> Response:
    return previews_api.video_poster(content_id, video_id, session, visitor.principal, storage)


@router.get("/{content_id}/print-{size}.pdf")
def print_sheet(
    request: Request,
    content_id: IdPath,
    size: str,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """The print sheet: the photo at print resolution with its QR code and a line saying what to do."""
    content = _content(session, visitor, content_id)
    if size not in print_sheets.SHEET_SIZES:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"there is no print sheet of size {size!r}; sizes: {', '.join(print_sheets.SHEET_SIZES)}",
        )
    image = _stored(storage, content.image_key, "the photo is missing from storage")
    pdf = print_sheets.render_print_sheet(
        image,
        public_url=public_url(content, settings),
        size=size,
        language=words_for(request, visitor).language,
    )
    name = f"ar-content-{content.id}-print-{size}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": content_disposition(name, "application/pdf"),
            "Cache-Control": "private, no-store",
        },
    )


def _back(content_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/console/contents/{content_id}?done={done}", status_code=303)


def _refused(
    request: Request, session: Session, visitor: Visitor, settings: SettingsDep, storage: Storage,
    content_id: int, exc: HTTPException | FormRefused,
) -> Response:  # fmt: skip
    """The content's page again with the refusal (the script's upload: the refusal as JSON)."""
    sentence, code = refusal(session, exc)
    if SCRIPT_HEADER in request.headers:
        return JSONResponse({"detail": sentence}, status_code=code)
    return content_page(request, session, visitor, settings, storage, content_id, error=sentence, code=code)


@router.post("/{content_id}/recompile", dependencies=[CsrfChecked])
def recompile(
    request: Request,
    content_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    try:
        ar_content_api.regenerate_marker(content_id, session, visitor.principal)
    except HTTPException as exc:
        return _refused(request, session, visitor, settings, storage, content_id, exc)
    return _back(content_id, "recompiling")


@router.post("/{content_id}/videos", dependencies=[CsrfChecked])
def add_video(
    request: Request,
    content_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
    video: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        ar_content_api.upload_video(content_id, session, visitor.principal, settings, storage, video)
    except HTTPException as exc:
        return _refused(request, session, visitor, settings, storage, content_id, exc)
    location = f"/console/contents/{content_id}?done=video_added"
    if SCRIPT_HEADER in request.headers:
        return JSONResponse({"location": location})
    return RedirectResponse(location, status_code=303)


@router.post("/{content_id}/active-video", dependencies=[CsrfChecked])
def choose_video(
    request: Request,
    content_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
    video_id: Annotated[str, Form()] = "",
) -> Response:
    try:
        change = body(ARContentUpdate, active_video_id=video_id or None)
        ar_content_api.update_ar_content(content_id, change, session, visitor.principal, settings, storage)
    except (FormRefused, HTTPException) as exc:
        return _refused(request, session, visitor, settings, storage, content_id, exc)
    return _back(content_id, "video_chosen")


# The fields each kind of schedule uses; the others are left out of the API's body.
_ROTATION_FIELDS = {
    "daily": ("time_of_day",),
    "weekly": ("time_of_day", "day_of_week"),
    "monthly": ("time_of_day", "day_of_month"),
    "cron": ("cron_expression",),
    "random": ("time_of_day",),
}


@router.post("/{content_id}/rotation", dependencies=[CsrfChecked])
def set_rotation(
    request: Request,
    content_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
    rotation_type: Annotated[str, Form()] = "",
    time_of_day: Annotated[str, Form()] = "",
    day_of_week: Annotated[str, Form()] = "",
    day_of_month: Annotated[str, Form()] = "",
    cron_expression: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    video_sequence: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Set the schedule from the form: the fields its kind uses, in the API's own body."""
    sent = {
        "time_of_day": time_of_day,
        "day_of_week": day_of_week,
        "day_of_month": day_of_month,
        "cron_expression": cron_expression,
    }
    fields: dict[str, Any] = {name: sent[name] or None for name in _ROTATION_FIELDS.get(rotation_type, ())}
    try:
        schedule = body(
            rotation_api.RotationIn,
            rotation_type=rotation_type,
            timezone=timezone or "UTC",
            video_sequence=video_sequence or [],
            **fields,
        )
        rotation_api.set_rotation(content_id, schedule, session, visitor.principal)
    except (FormRefused, HTTPException) as exc:
        return _refused(request, session, visitor, settings, storage, content_id, exc)
    return _back(content_id, "rotation_saved")


@router.post("/{content_id}/rotation/stop", dependencies=[CsrfChecked])
def stop_rotation(content_id: IdPath, session: SessionDep, visitor: CurrentVisitor) -> Response:
    rotation_api.stop_rotation(content_id, session, visitor.principal)
    return _back(content_id, "rotation_stopped")
