"""What the ASGI guards in front of the routes answer when they refuse a request: the API's JSON error,
and the connection closed, since the rest of the request body is never read."""

from __future__ import annotations

import json

from starlette.types import Send


async def refuse_and_close(send: Send, status_code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
