"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts and can refuse
chosen addresses for good (550), as a mail server does for a mailbox that does not exist."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.servers import free_port


@dataclass
class MailServer:
    """What the server received; `refuse` holds addresses answered with 550 at RCPT."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    arrival_times: list[float] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in str(m["To"])]


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:  # noqa: N802
        if address in self.server.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append(message)  # type: ignore[arg-type]
            self.server.arrival_times.append(time.monotonic())
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(*, port: int | None = None, login: tuple[str, str] | None = None) -> Iterator[MailServer]:
    """An SMTP server on 127.0.0.1 (`port`, or a free one); with `login`, it demands that AUTH LOGIN."""
    server = MailServer("127.0.0.1", port or free_port())
    options: dict[str, Any] = {}
    if login is not None:

        def authenticate(
            _server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
            if ok:
                server.logins.append(data.login.decode())
            return AuthResult(success=ok)

        options = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False}
    controller = Controller(_Handler(server), hostname=server.host, port=server.port, **options)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
