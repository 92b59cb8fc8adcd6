"""The public viewer: the AR page, the content it plays, and the page's browser files. No key needed."""

from __future__ import annotations

import re
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, HTTPException, Query, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from arv.api.deps import SessionDep, SettingsDep, StorageDep
from arv.api.security import viewer_page_headers
from arv.db.models import ARContent
from arv.services import public_content
from arv.viewer.assets import STATIC_ROUTE, AssetsNotInstalled, check_installed, find_static
from arv.viewer.messages import pick_language
from arv.viewer.page import render_viewer

log = structlog.get_logger(__name__)
router = APIRouter(tags=["viewer"])

# Public ids are UUIDs; anything else is unknown without a database query.
UNIQUE_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
# The page and its JSON change with rotation and expiry: never cached.
NO_STORE = {"Cache-Control": "no-store"}
# The npm files change only with package-lock.json; the page's own with each release.
STATIC_CACHE = {"Cache-Control": "public, max-age=86400"}

# The page's state for each state of the content, and the data-reason of error pages.
PAGE_STATES = {
    public_content.ACTIVE: ("loading", None, status.HTTP_200_OK),
    # The page runs: it shows the poster over the print and says the video is being prepared.
    public_content.PREPARING: ("loading", None, status.HTTP_200_OK),
    public_content.EXPIRED: ("expired", None, status.HTTP_410_GONE),
    public_content.NOT_READY: ("error", "not_ready", status.HTTP_404_NOT_FOUND),
    public_content.UNKNOWN: ("error", "unknown", status.HTTP_404_NOT_FOUND),
    public_content.DELETED: ("error", "deleted", status.HTTP_410_GONE),
}

JSON_ANSWERS = {
    # 404 like every content the viewer may not play (API.md); `state` tells the page which it is.
    public_content.EXPIRED: (status.HTTP_404_NOT_FOUND, "this AR content has expired or was switched off"),
    public_content.NOT_READY: (
        status.HTTP_404_NOT_FOUND,
        "this AR content is not ready yet: its marker is still being made or it has no video",
    ),
    public_content.UNKNOWN: (status.HTTP_404_NOT_FOUND, "there is no AR content with this id"),
    public_content.DELETED: (
        status.HTTP_410_GONE,
        "this AR content is no longer available: the studio that made it deleted it",
    ),
}


def _lookup(session: SessionDep, unique_id: str) -> public_content.ViewerContent:
    if not UNIQUE_ID.match(unique_id):
        return public_content.ViewerContent(public_content.UNKNOWN)
    return public_content.find_for_viewer(session, unique_id)


def _target_size(content: ARContent) -> tuple[int, int]:
    """The target's size as compiled (orientation applied), else the upload's."""
    report = content.marker_metadata or {}
    width, height = report.get("width"), report.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return content.image_width, content.image_height


def _page_relative(url: str, base_url: str) -> str:
    """A link to this API as a path, so the page fetches it from whatever origin it was opened on
    (a phone may reach the API under another name than ARV_PUBLIC_BASE_URL; a cross-origin fetch of
    the marker would need CORS). Links elsewhere (S3) stay as they are."""
    prefix = base_url.rstrip("/") + "/"
    return url[len(prefix) - 1 :] if url.startswith(prefix) else url


@router.get("/ar/{unique_id}", response_class=HTMLResponse, include_in_schema=False)
def viewer_page(
    unique_id: str,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    accept_language: Annotated[str | None, Header()] = None,
) -> HTMLResponse:
    """The AR page. Expired, deleted, unknown and not-ready content get a plain page that never asks for
    the camera."""
    found = _lookup(session, unique_id)
    page = viewer_page_headers(settings, storage)
    state, reason, code = PAGE_STATES[found.state]
    if state == "loading":
        try:
            check_installed()
        except AssetsNotInstalled as exc:
            log.error("viewer.assets_missing", error=str(exc))
            state, reason, code = "error", "failed", status.HTTP_503_SERVICE_UNAVAILABLE
    html = render_viewer(
        state=state,
        reason=reason,
        language=pick_language(found.language, accept_language),
        unique_id=unique_id,
        cdn_base_url=settings.viewer_cdn_base_url,
        nonce=page.nonce,
    )
    return HTMLResponse(html, status_code=code, headers={**NO_STORE, **page.headers})


@router.get("/api/ar/{unique_id}", tags=["viewer"])
def viewer_content(
    unique_id: str,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    repeat: Annotated[bool, Query()] = False,
) -> JSONResponse:
    """What the page plays, and one view counted: 200 `{state: "active", marker_url, video_url,
    small_video_url, poster_url, ...}`; 200 `{state: "preparing", marker_url, poster_url, progress}`
    while the video's renditions are made; 404 `{state: "expired" | "unknown" | "not_ready"}`; 410
    `{state: "deleted"}`. Every answer has `detail` or data and `language`.

    `repeat=true` is a page asking again (every few seconds while its video is prepared): the same
    view, not counted again."""
    found = _lookup(session, unique_id)
    if found.state not in (public_content.ACTIVE, public_content.PREPARING):
        code, detail = JSON_ANSWERS[found.state]
        return JSONResponse(
            {"detail": detail, "state": found.state, "language": found.language},
            status_code=code,
            headers=NO_STORE,
        )
    content, video = found.content, found.video
    assert content is not None and video is not None and content.marker_key is not None
    if not repeat:
        public_content.count_view(session, content.id)
        session.commit()
    ttl = settings.download_url_ttl_s
    base = settings.api_base_url

    def link(key: str | None) -> str | None:
        return _page_relative(storage.download_url(key, expires_in=ttl), base) if key else None

    width, height = _target_size(content)
    body: dict[str, Any] = {
        "state": found.state,
        "unique_id": content.unique_id,
        "title": content.title,
        "language": found.language,
        "marker_url": link(content.marker_key),
        "poster_url": link(video.poster_key),
        "target_width": width,
        "target_height": height,
    }
    if found.state == public_content.PREPARING:
        body["detail"] = "the video is still being prepared; it plays as soon as it is ready"
        body["progress"] = video.transcode_progress
        body["video_url"] = None
    else:
        main, small = public_content.playback_keys(video)
        body["video_url"] = link(main)
        body["small_video_url"] = link(small)
        body["video_content_type"] = "video/mp4" if video.rendition_key else video.content_type
    return JSONResponse(body, headers=NO_STORE)


@router.get(STATIC_ROUTE + "{relative:path}", include_in_schema=False)
def viewer_static(relative: str, accept_encoding: Annotated[str | None, Header()] = None) -> FileResponse:
    """The page's own files and the npm files it loads; gzip copies to browsers that take them."""
    served = find_static(relative, accepts_gzip="gzip" in (accept_encoding or "").lower())
    if served is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "there is no such viewer file")
    headers = {**STATIC_CACHE, "Vary": "Accept-Encoding"}
    if served.encoding:
        headers["Content-Encoding"] = served.encoding
    return FileResponse(served.path, media_type=served.media_type, headers=headers)
