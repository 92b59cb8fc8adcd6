"""QR codes of AR content: the PNG and SVG that point a phone at the content's public page."""

from fastapi import APIRouter, HTTPException, Response, status

from arv.api.deps import CurrentPrincipal, SessionDep, StorageDep, get_owned
from arv.api.schemas import IdPath
from arv.db.models import ARContent
from arv.storage import ObjectNotFound
from arv.storage.base import content_disposition

router = APIRouter(prefix="/api/ar-content", tags=["ar-content"])


_MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def _qr_response(
    session: SessionDep, principal: CurrentPrincipal, storage: StorageDep, content_id: int, kind: str
) -> Response:
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    key = content.qr_png_key if kind == "png" else content.qr_svg_key
    not_yet = HTTPException(
        status.HTTP_404_NOT_FOUND,
        "the QR code of this content is still being made; try again in a few seconds",
        headers={"Retry-After": "5"},
    )
    if key is None:
        raise not_yet
    try:
        data = storage.get(key)
    except ObjectNotFound as exc:
        raise not_yet from exc
    # The SVG is an attachment, the PNG inline (storage.base.INLINE_TYPES); neither can act as a page.
    headers = {
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": content_disposition(f"ar-content-{content_id}-qr.{kind}", _MEDIA_TYPES[kind]),
    }
    return Response(data, media_type=_MEDIA_TYPES[kind], headers=headers)


@router.get("/{content_id}/qr.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
def qr_png(
    content_id: IdPath, session: SessionDep, principal: CurrentPrincipal, storage: StorageDep
) -> Response:
    """The QR code of the content's public URL as a PNG image."""
    return _qr_response(session, principal, storage, content_id, "png")


@router.get(
    "/{content_id}/qr.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}}
)
def qr_svg(
    content_id: IdPath, session: SessionDep, principal: CurrentPrincipal, storage: StorageDep
) -> Response:
    """The QR code of the content's public URL as an SVG image, for print."""
    return _qr_response(session, principal, storage, content_id, "svg")
