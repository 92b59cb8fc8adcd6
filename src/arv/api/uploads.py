"""Reading multipart uploads within the size limit, and the ASGI guard that enforces it while streaming."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile, status
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arv.api.refusals import refuse_and_close
from arv.services.uploads import UploadRefused
from arv.storage import Storage, new_key

# Room for the multipart envelope and form fields around the file itself.
ENVELOPE_BYTES = 1024 * 1024


def read_upload(upload: UploadFile | None, *, limit: int, field: str) -> bytes:
    if upload is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"the form has no '{field}' file")
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the {field} is larger than the upload limit of {limit // (1024 * 1024)} MB",
        )
    return data


def refused(exc: UploadRefused) -> HTTPException:
    return HTTPException(exc.status_code, str(exc))


class BodySizeLimit:
    """Answers 413 as soon as a request body passes `max_bytes`, before it is buffered anywhere."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        too_large = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app answers to a body cut short (FastAPI says "error parsing the body"),
            # the client is told the real reason.
            nonlocal refused
            if not too_large:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        limit_mb = (self.max_bytes - ENVELOPE_BYTES) // (1024 * 1024)
        await refuse_and_close(send, 413, f"the request is larger than the upload limit of {limit_mb} MB")


class _TooLarge(Exception):
    pass


class StoredUntilCommit:
    """Objects a request writes to storage before its transaction: if the transaction does not
    commit, it is rolled back and the objects are deleted, so a failed request leaves no orphan."""

    def __init__(self, session: Session, storage: Storage) -> None:
        self.session = session
        self.storage = storage
        self.keys: list[str] = []

    def put(self, prefix: str, suffix: str, data: bytes, content_type: str) -> str:
        """Store `data` under a new unguessable key and return the key."""
        key = new_key(prefix, suffix)
        self.storage.put(key, data, content_type)
        self.keys.append(key)
        return key

    def __enter__(self) -> StoredUntilCommit:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            return
        self.session.rollback()
        for key in self.keys:
            self.storage.delete(key)
