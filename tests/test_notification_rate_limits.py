"""The send-rate limiter holds across processes, on Redis and on the embedded file backend alike."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from arv.services.notify.ratelimit import FileRateLimiter, Limit, RateLimiter, RedisRateLimiter
from tests.support.servers import REDIS_URL

# Far apart: the reservations lie in the future while the test runs, so none is pruned meanwhile.
SPACING_S = 5.0
PROCESSES = 4
RESERVATIONS_EACH = 8


def make_limiter(backend: str, where: str) -> RateLimiter:
    if backend == "redis":
        return RedisRateLimiter(REDIS_URL, key_prefix=where)
    return FileRateLimiter(Path(where))


def reserve_many(backend: str, where: str, key: str, start: Any) -> None:
    limiter = make_limiter(backend, where)
    start.wait(60)  # all processes reserve at once, to contend for the same slots
    for _ in range(RESERVATIONS_EACH):
        assert limiter.reserve([Limit(key, SPACING_S)], max_wait_s=3600).granted


def reserved_instants(backend: str, where: str, key: str) -> list[float]:
    if backend == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return [score for _, score in client.zrange(f"{where}arv:rate:{key}", 0, -1, withscores=True)]
        finally:
            client.delete(f"{where}arv:rate:{key}")
    return list(json.loads(Path(where).read_text())[key].values())


@pytest.fixture(params=["redis", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    where = (
        f"ratelimit-test-{uuid.uuid4().hex[:8]}:" if request.param == "redis" else str(tmp_path / "r.json")
    )
    return str(request.param), where


def test_reservations_from_many_processes_keep_the_spacing(backend: tuple[str, str]) -> None:
    kind, where = backend
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [
        context.Process(target=reserve_many, args=(kind, where, "shared", start)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    instants = sorted(reserved_instants(kind, where, "shared"))
    assert len(instants) == PROCESSES * RESERVATIONS_EACH
    gaps = [b - a for a, b in zip(instants, instants[1:], strict=False)]
    assert min(gaps) >= SPACING_S - 1e-6


def test_a_chat_waits_for_the_end_of_its_previous_send(backend: tuple[str, str]) -> None:
    limiter = make_limiter(*backend)
    overall, chat = Limit("bot", 0.01), Limit("bot:chat:1", 0.3, after_previous_send=True)
    first = limiter.reserve([overall, chat], max_wait_s=5)
    assert first.granted and first.wait_s == pytest.approx(0, abs=0.01)
    # While the first send is in flight, the chat has no slot at any distance; other chats do.
    while_in_flight = limiter.reserve([overall, chat], max_wait_s=5)
    assert not while_in_flight.granted
    other_chat = limiter.reserve([overall, Limit("bot:chat:2", 0.3, after_previous_send=True)], max_wait_s=5)
    assert other_chat.granted and other_chat.wait_s <= 0.01 + 1e-6
    released_at = time.monotonic()
    limiter.release([overall, chat], first)
    after = limiter.reserve([overall, chat], max_wait_s=5)
    asked_at = time.monotonic()
    assert after.granted and 0.3 - (asked_at - released_at) - 0.01 <= after.wait_s <= 0.3 + 0.01


def test_a_slot_beyond_the_longest_wait_is_not_reserved(backend: tuple[str, str]) -> None:
    limiter = make_limiter(*backend)
    smtp = Limit("smtp", 1.0)
    assert limiter.reserve([smtp], max_wait_s=0.5).granted
    refused = limiter.reserve([smtp], max_wait_s=0.5)
    assert not refused.granted and 0.5 < refused.wait_s <= 1.0
    # Nothing was reserved by the refusal: the next slot is still one spacing after the first.
    assert 0.5 < limiter.reserve([smtp], max_wait_s=2).wait_s <= refused.wait_s


def test_sends_in_flight_are_capped_until_released(backend: tuple[str, str]) -> None:
    limiter = make_limiter(*backend)
    bot = Limit("bot", 0.001, max_in_flight=3)
    flying = [limiter.reserve([bot], max_wait_s=1) for _ in range(3)]
    assert all(r.granted for r in flying)
    assert not limiter.reserve([bot], max_wait_s=1).granted
    limiter.release([bot], flying[0])
    assert limiter.reserve([bot], max_wait_s=1).granted
