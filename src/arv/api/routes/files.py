"""Signed, expiring downloads of objects in the local storage folder (S3 serves its own).

Players stream from these links: Starlette's FileResponse answers `Range:` (206 with the slice, 416
`bytes */size` past the end, If-Range by ETag) and sends `Accept-Ranges: bytes`; HEAD tells a player
the size before it asks for ranges."""

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from arv.api.deps import StorageDep
from arv.api.security import NOT_A_PAGE_CSP
from arv.storage import ObjectNotFound
from arv.storage.base import content_disposition
from arv.storage.local import DOWNLOAD_ROUTE, LocalStorage

router = APIRouter(tags=["files"])


@router.api_route(DOWNLOAD_ROUTE + "{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
def download(key: str, expires: int, signature: str, storage: StorageDep) -> FileResponse:
    if not isinstance(storage, LocalStorage) or not storage.verify(key, expires, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this download link is invalid or has expired")
    try:
        path = storage.file_path(key)
    except ObjectNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this file no longer exists") from exc
    media_type = storage.content_type_of(path)
    headers = {
        "Cache-Control": "private, max-age=600",
        "Content-Disposition": content_disposition(key, media_type),
        # Set here, not left to the middleware: a stored file is never a page, whatever its type.
        "Content-Security-Policy": NOT_A_PAGE_CSP,
    }
    return FileResponse(path, media_type=media_type, headers=headers)
