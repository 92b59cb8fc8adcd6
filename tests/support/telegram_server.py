"""A local HTTP server that answers `sendMessage` like the Telegram Bot API, with switches for its
failures (429 with `retry_after`, 403 bot blocked, 400 chat not found, 5xx) and a record of every
message it accepted, with the time it arrived, per chat."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.support.servers import free_port, wait_for_port


@dataclass(frozen=True)
class ReceivedMessage:
    chat_id: str
    text: str
    at: float  # time.monotonic() when the request arrived
    parse_mode: str | None = None  # as the request gave it: how Telegram would read `text`


@dataclass(frozen=True)
class ScriptedAnswer:
    status: int
    description: str
    retry_after: int | None = None


BLOCKED = ScriptedAnswer(403, "Forbidden: bot was blocked by the user")
CHAT_NOT_FOUND = ScriptedAnswer(400, "Bad Request: chat not found")
SERVER_ERROR = ScriptedAnswer(502, "Bad Gateway")


def too_many_requests(retry_after: int) -> ScriptedAnswer:
    return ScriptedAnswer(429, f"Too Many Requests: retry after {retry_after}", retry_after)


class FakeBotApi:
    """The Bot API of one bot (`token`) at `url`.

    Switches: `answer_chat(chat, answer)` answers every message to that chat so;
    `answer_next(answer, times)` answers the next `times` messages (to any chat) so.
    """

    def __init__(self, token: str) -> None:
        self.token = token
        self.url = ""
        self.received: list[ReceivedMessage] = []
        self.refused: list[tuple[str, int, float]] = []
        self._per_chat: dict[str, ScriptedAnswer] = {}
        self._next: deque[ScriptedAnswer] = deque()
        self._lock = threading.Lock()
        self._message_id = 0

    def answer_chat(self, chat_id: str, answer: ScriptedAnswer) -> None:
        with self._lock:
            self._per_chat[chat_id] = answer

    def answer_next(self, answer: ScriptedAnswer, times: int = 1) -> None:
        with self._lock:
            self._next.extend([answer] * times)

    def messages_to(self, chat_id: str) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self.received if m.chat_id == chat_id]

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, object]]:
        now = time.monotonic()
        if path == "/__record":
            with self._lock:
                return 200, {
                    "received": [[m.chat_id, m.at] for m in self.received],
                    "refused": [list(r) for r in self.refused],
                }
        if path != f"/bot{self.token}/sendMessage":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            request = json.loads(body)
            chat_id, text = str(request["chat_id"]), str(request["text"])
            parse_mode = request.get("parse_mode")
        except (ValueError, KeyError):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        with self._lock:
            answer = self._next.popleft() if self._next else self._per_chat.get(chat_id)
            if answer is not None:
                self.refused.append((chat_id, answer.status, now))
                reply: dict[str, object] = {
                    "ok": False,
                    "error_code": answer.status,
                    "description": answer.description,
                }
                if answer.retry_after is not None:
                    reply["parameters"] = {"retry_after": answer.retry_after}
                return answer.status, reply
            self._message_id += 1
            self.received.append(ReceivedMessage(chat_id, text, now, parse_mode))
            return 200, {
                "ok": True,
                "result": {"message_id": self._message_id, "chat": {"id": chat_id}, "text": text},
            }

    # ---- what the benchmark reports ---------------------------------------------------------

    def highest_rate_overall(self, window_s: float = 1.0) -> int:
        """The most messages accepted within any `window_s` seconds."""
        return _densest_window([m.at for m in self.received], window_s)

    def highest_rate_per_chat(self, window_s: float = 1.0) -> int:
        """The most messages accepted for one chat within any `window_s` seconds."""
        by_chat: dict[str, list[float]] = defaultdict(list)
        for message in self.received:
            by_chat[message.chat_id].append(message.at)
        return max((_densest_window(times, window_s) for times in by_chat.values()), default=0)

    def shortest_gap_per_chat(self) -> float | None:
        """The shortest time between two messages accepted for the same chat."""
        by_chat: dict[str, list[float]] = defaultdict(list)
        for message in self.received:
            by_chat[message.chat_id].append(message.at)
        ordered = [sorted(times) for times in by_chat.values()]
        gaps = [b - a for times in ordered for a, b in zip(times, times[1:], strict=False)]
        return min(gaps, default=None)


def _densest_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


@contextmanager
def fake_bot_api(token: str = "123456:TEST-TOKEN", port: int = 0) -> Iterator[FakeBotApi]:
    """Serve a FakeBotApi on loopback (`port`, or a free one); its `url` is the ARV_TELEGRAM_API_URL."""
    api = FakeBotApi(token)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            length = int(self.headers.get("Content-Length") or 0)
            status, reply = api.handle(self.path, self.rfile.read(length))
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-bot-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def _raise_priority() -> None:
    # The server's clock is the measurement: on a busy machine it must not wait for a CPU while
    # requests queue up, or it would record them as one burst. Needs the privilege to lower niceness.
    with suppress(PermissionError):
        os.nice(-10)


@contextmanager
def fake_bot_api_process(token: str = "123456:TEST-TOKEN") -> Iterator[RemoteBotApi]:
    """A FakeBotApi in its own process, so that the times it records are not skewed by a busy caller
    (benchmarks); `record()` fetches what it has received so far."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.telegram_server", "--port", str(port), "--token", token],
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=_raise_priority,
    )
    try:
        wait_for_port(port)
        yield RemoteBotApi(token, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass(frozen=True)
class RemoteBotApi:
    token: str
    url: str

    def record(self) -> FakeBotApi:
        """A copy of the server's record (message texts left out), with the same statistics."""
        answer = httpx.post(f"{self.url}/__record", timeout=30).json()
        copy = FakeBotApi(self.token)
        copy.received = [ReceivedMessage(chat, "", at) for chat, at in answer["received"]]
        copy.refused = [tuple(r) for r in answer["refused"]]  # type: ignore[misc]
        return copy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve a fake Telegram Bot API until terminated.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    cli = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with fake_bot_api(cli.token, cli.port):
        signal.pause()
