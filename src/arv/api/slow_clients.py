"""Deadlines for slow clients, which uvicorn does not have on its own.

uvicorn arms its keep-alive timer only after a response: a client that connects and then sends its
headers a byte at a time (slowloris), or never sends any, holds its connection for ever. Its HTTP
protocols are subclassed here so that a request's headers must be complete within
ARV_HTTP_HEADER_TIMEOUT_S of the connection's opening (or of the first byte of the next request on a
kept-alive connection), else the answer is 408 and the connection is closed; and headers larger than
ARV_HTTP_MAX_HEADER_BYTES get 431 (httptools itself takes any size). Headers are parsed before the ASGI
application sees anything, so this cannot be done in a middleware.

The body is read by the application: `BodyReadTimeout` answers 408 when a piece of it takes longer
than ARV_HTTP_BODY_TIMEOUT_S to arrive after the previous one (a slow phone uploading 50 MB is fine as
long as it keeps sending).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from arv.api.refusals import refuse_and_close
from arv.config import get_settings


def _refusal(status: bytes, detail: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, written before any ASGI app is involved:
    the API's JSON error."""
    body = json.dumps({"detail": detail}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"x-content-type-options: nosniff\r\n"
        b"connection: close\r\n\r\n" + body
    )


HEADER_TIMEOUT_RESPONSE = _refusal(b"408 Request Timeout", "the request headers took too long to arrive")
HEADERS_TOO_LARGE_RESPONSE = _refusal(
    b"431 Request Header Fields Too Large", "the request headers are too large"
)


class HeaderDeadline:
    """The header deadline of one connection, and the bound on its headers' size (httptools has none:
    uvicorn alone takes megabytes of headers); its protocol calls the hooks."""

    def __init__(self, protocol: HttpToolsProtocol) -> None:
        self.protocol = protocol
        settings = get_settings()
        self.timeout_s = settings.http_header_timeout_s
        self.max_bytes = settings.http_max_header_bytes
        self.timer: asyncio.TimerHandle | None = None
        # Bytes received since the current request's first byte, while its headers are incomplete.
        self.received = 0

    def _awaiting_request(self) -> bool:
        cycle = self.protocol.cycle
        return cycle is None or cycle.response_complete

    def arm(self) -> None:
        if self.timer is None:
            self.timer = self.protocol.loop.call_later(self.timeout_s, self._passed)

    def cancel(self) -> None:
        self.received = 0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def feed(self, data: bytes, feed: Any) -> None:
        """Pass `data` to the parser (`feed`); the clock runs from the first byte of a request to the
        end of its headers, which is when the protocol starts a new request cycle."""
        awaiting = self._awaiting_request()
        if awaiting:
            self.arm()
            self.received += len(data)
        before = self.protocol.cycle
        feed(data)
        if self.protocol.cycle is not before:
            self.cancel()
        elif awaiting and self.received > self.max_bytes:
            self._refuse(HEADERS_TOO_LARGE_RESPONSE)

    def _passed(self) -> None:
        self.timer = None
        if self._awaiting_request():
            self._refuse(HEADER_TIMEOUT_RESPONSE)

    def _refuse(self, response: bytes) -> None:
        self.cancel()
        transport = self.protocol.transport
        if not transport.is_closing():
            transport.write(response)
            transport.close()


class HttpToolsWithDeadlines(HttpToolsProtocol):
    """uvicorn's httptools protocol (the one it picks, httptools being installed), with the deadline."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.header_deadline = HeaderDeadline(self)
        super().connection_made(transport)
        self.header_deadline.arm()

    def data_received(self, data: bytes) -> None:
        self.header_deadline.feed(data, super().data_received)

    def connection_lost(self, exc: Exception | None) -> None:
        self.header_deadline.cancel()
        super().connection_lost(exc)


def uvicorn_options() -> dict[str, Any]:
    """What `arv api` passes to uvicorn.run besides the app, host, port and workers."""
    settings = get_settings()
    return {
        "http": HttpToolsWithDeadlines,
        "timeout_keep_alive": settings.http_keep_alive_timeout_s,
        "limit_concurrency": settings.http_max_connections,
    }


class BodyTimeout(Exception):
    pass


class BodyReadTimeout:
    """Answers 408 and closes the connection when a request body stalls for more than `timeout_s`."""

    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_complete = False
        timed_out = False
        started = False
        refused = False

        async def bounded_receive() -> Message:
            nonlocal body_complete, timed_out
            if body_complete:
                # Past the body, a receive waits for the disconnect (a streaming response listens): unbounded.
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                timed_out = True
                raise BodyTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app made of the body cut short (FastAPI: "error parsing the body"), the client
            # is told the real reason.
            nonlocal started, refused
            if started or not timed_out:
                started = True
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except BodyTimeout:
            if started:
                raise
            if not refused:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await refuse_and_close(
            send, 408, f"the request body stopped arriving for more than {self.timeout_s:g} s; send it again"
        )
