"""Previews: thumbnails of portraits and AR content images, poster frames of videos."""

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status

from arv.api.deps import CurrentPrincipal, SessionDep, StorageDep, get_owned, get_owned_video
from arv.api.schemas import IdPath
from arv.db.models import ARContent, Portrait
from arv.services import previews
from arv.storage import ObjectNotFound, Storage
from arv.storage.base import content_disposition

router = APIRouter(tags=["previews"])

JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}
# A preview never changes under its key; a private cache may keep it.
CACHE = {"Cache-Control": "private, max-age=3600"}


def _jpeg(storage: Storage, key: str | None, pending: str) -> Response:
    missing = HTTPException(status.HTTP_404_NOT_FOUND, pending, headers={"Retry-After": "5"})
    if key is None:
        raise missing
    try:
        headers = {**CACHE, "Content-Disposition": content_disposition(key, "image/jpeg")}
        return Response(storage.get(key), media_type="image/jpeg", headers=headers)
    except ObjectNotFound as exc:
        raise missing from exc


def _thumbnail(session: SessionDep, storage: Storage, subject: Portrait | ARContent) -> Response:
    if subject.thumbnail_key is None:
        reason = previews.thumbnail_failure(session, subject)
        if reason:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"no thumbnail could be made: {reason}"
            )
    pending = "the thumbnail is still being made; try again in a few seconds"
    return _jpeg(storage, subject.thumbnail_key, pending)


@router.get("/api/portraits/{portrait_id}/thumbnail.jpg", response_class=Response, responses=JPEG)
def portrait_thumbnail(
    portrait_id: IdPath, session: SessionDep, principal: CurrentPrincipal, storage: StorageDep
) -> Response:
    """A small JPEG of the portrait, longest side ARV_THUMBNAIL_MAX_PX."""
    return _thumbnail(session, storage, get_owned(session, principal, Portrait, portrait_id, "portrait"))


@router.get("/api/ar-content/{content_id}/thumbnail.jpg", response_class=Response, responses=JPEG)
def content_thumbnail(
    content_id: IdPath, session: SessionDep, principal: CurrentPrincipal, storage: StorageDep
) -> Response:
    """A small JPEG of the AR content's image, longest side ARV_THUMBNAIL_MAX_PX."""
    return _thumbnail(session, storage, get_owned(session, principal, ARContent, content_id, "AR content"))


@router.get(
    "/api/ar-content/{content_id}/videos/{video_id}/poster.jpg", response_class=Response, responses=JPEG
)
def video_poster(
    content_id: IdPath,
    video_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
    storage: StorageDep,
) -> Response:
    """A frame of the video near its start; 422 with the reason when ffmpeg could not read the video."""
    _, video = get_owned_video(session, principal, content_id, video_id)
    if video.poster_error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"this video has no poster: {video.poster_error}"
        )
    return _jpeg(storage, video.poster_key, "the poster is still being made; try again in a few seconds")
