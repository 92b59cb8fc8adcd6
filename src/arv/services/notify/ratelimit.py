"""Send-rate limits shared by every worker: Redis when the broker is Redis, a locked file otherwise.

A limit is a minimum spacing between two sends under one key ("telegram" for the whole bot,
"telegram:chat:42" for one chat, "smtp" for the mail server). A send that falls under several limits
reserves one instant that keeps every one of them: the earliest moment from now at which no other
reservation under any of its keys lies closer than that key's spacing. Reservations fill gaps, so a
busy chat does not hold back the slots other chats could use.

Both backends run the same algorithm atomically: a Lua script inside Redis (its clock is the one all
machines share), or the JSON state file under an exclusive `flock` on the embedded default (one
machine, several worker processes).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import redis

from arv.config import Settings

# Two instants closer than this are the same instant (float round-off in `r + spacing - spacing`).
_EPSILON_S = 1e-6


@dataclass(frozen=True)
class Limit:
    """At most one send per `spacing_s` seconds under `key`."""

    key: str
    spacing_s: float

    @classmethod
    def per_second(cls, key: str, rate_per_s: float) -> Limit:
        return cls(key, 1.0 / rate_per_s)


@dataclass(frozen=True)
class Reservation:
    """A send slot: `granted` means it is ours `wait_s` seconds from now; otherwise the earliest slot
    was further away than the caller would wait, nothing was reserved, and `wait_s` says how far."""

    granted: bool
    wait_s: float


class RateLimiter(Protocol):
    def reserve(self, limits: Sequence[Limit], *, max_wait_s: float) -> Reservation:
        """Reserve the earliest instant that keeps every limit, if it is at most `max_wait_s` away."""
        ...


def earliest_free_instant(now: float, reserved: Sequence[tuple[float, Sequence[float]]]) -> float:
    """The earliest instant >= `now` at least `spacing` away from every reservation of every limit.

    `reserved` holds, per limit, its spacing and its reserved instants. Only `now` and the ends of
    reservations (`r + spacing`) can be the answer, and the last such end is always free.
    """
    candidates = sorted({now, *(r + spacing for spacing, times in reserved for r in times)})
    for candidate in candidates:
        if candidate < now:
            continue
        if all(abs(r - candidate) >= spacing - _EPSILON_S for spacing, times in reserved for r in times):
            return candidate
    raise AssertionError("the last reservation end is always free")  # pragma: no cover


class FileRateLimiter:
    """Reservations in a JSON file, changed under an exclusive lock: shared by the processes of one
    machine (the embedded default, where the broker is a folder too).

    Parameters: `path` of the state file (its lock is `path` + ".lock").
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)

    def reserve(self, limits: Sequence[Limit], *, max_wait_s: float) -> Reservation:
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read()
                now = time.time()
                # Forget reservations that can no longer constrain anything.
                for key, entry in list(state.items()):
                    times = [r for r in entry["times"] if r > now - entry["spacing"]]
                    if times:
                        entry["times"] = times
                    else:
                        del state[key]
                reserved = [(limit.spacing_s, state.get(limit.key, {}).get("times", [])) for limit in limits]
                slot = earliest_free_instant(now, reserved)
                if slot - now > max_wait_s:
                    return Reservation(False, slot - now)
                for limit in limits:
                    entry = state.setdefault(limit.key, {"spacing": limit.spacing_s, "times": []})
                    entry["spacing"] = max(entry["spacing"], limit.spacing_s)
                    entry["times"].append(slot)
                self._write(state)
                return Reservation(True, slot - now)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict]:  # type: ignore[type-arg]
        try:
            return json.loads(self.path.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return {}

    def _write(self, state: dict[str, dict]) -> None:  # type: ignore[type-arg]
        # Write-then-rename, so a worker killed mid-write leaves the old state, never half a file.
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)


# KEYS: one sorted set of reserved instants per limit. ARGV[1]: max wait; ARGV[1 + i]: spacing of
# KEYS[i]; ARGV[2 + #KEYS]: a member id unique to this reservation. Returns {granted, wait as string}
# (Lua numbers would come back truncated to integers).
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max_wait = tonumber(ARGV[1])
local eps = 0.000001
local spacing = {}
local candidates = {now}
for i = 1, #KEYS do
  spacing[i] = tonumber(ARGV[i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. (now - spacing[i]))
  local times = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  for j = 2, #times, 2 do
    candidates[#candidates + 1] = tonumber(times[j]) + spacing[i]
  end
end
table.sort(candidates)
for _, c in ipairs(candidates) do
  if c >= now then
    if c - now > max_wait then
      return {0, tostring(c - now)}
    end
    local free = true
    for i = 1, #KEYS do
      local lo = c - spacing[i] + eps
      local hi = c + spacing[i] - eps
      if #redis.call('ZRANGEBYSCORE', KEYS[i], lo, hi, 'LIMIT', 0, 1) > 0 then
        free = false
        break
      end
    end
    if free then
      local member = ARGV[#KEYS + 2]
      for i = 1, #KEYS do
        redis.call('ZADD', KEYS[i], c, member)
        redis.call('PEXPIRE', KEYS[i], math.ceil((c - now + spacing[i]) * 1000) + 1000)
      end
      return {1, tostring(c - now)}
    end
  end
end
return redis.error_reply('no free instant found')
"""


class RedisRateLimiter:
    """Reservations in Redis sorted sets, made by one Lua script: shared by every worker everywhere.

    Parameters: `url` of the Redis server; `key_prefix` put before every key (the deployment's
    `redis_key_prefix`, so several deployments can share one server).
    """

    def __init__(self, url: str, *, key_prefix: str = "") -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        self.key_prefix = key_prefix
        self._script = self.client.register_script(_RESERVE_LUA)

    def reserve(self, limits: Sequence[Limit], *, max_wait_s: float) -> Reservation:
        keys = [f"{self.key_prefix}arv:rate:{limit.key}" for limit in limits]
        args = [max_wait_s, *(limit.spacing_s for limit in limits), uuid.uuid4().hex]
        try:
            granted, wait = self._script(keys=keys, args=args)
        except redis.ConnectionError as exc:
            # The limiter is part of the channel: without it nothing may be sent, so wait and retry.
            raise ConnectionError(f"the rate limiter (Redis) is unreachable: {exc}") from exc
        return Reservation(bool(int(granted)), float(wait))


@lru_cache(maxsize=8)
def _limiter(redis_url: str | None, key_prefix: str, state_path: Path) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, key_prefix=key_prefix)
    return FileRateLimiter(state_path)


def rate_limiter_for(settings: Settings) -> RateLimiter:
    """Redis when the broker is Redis (workers may be on many machines), else the file on this one."""
    broker = settings.celery_broker_url
    redis_url = broker if broker.startswith(("redis://", "rediss://")) else None
    return _limiter(redis_url, settings.redis_key_prefix, settings.resolved_data_dir / "rate-limits.json")
