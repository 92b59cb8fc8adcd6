"""Send-rate limits shared by every worker: Redis when the broker is Redis, a locked file otherwise.

A limit is a minimum spacing between two sends under one key ("telegram" for the whole bot,
"telegram:chat:42" for one chat, "smtp" for the mail server). A send that falls under several limits
reserves one instant that keeps every one of them: the earliest moment from now at which no other
reservation under any of its keys lies closer than that key's spacing. Reservations fill gaps, so a
busy chat does not hold back the slots other chats could use.

A slot is only when a send may start; it reaches the server a little later, and on a busy machine
some sends much later than others, which could bunch them up at the server. Two options bound what
the server sees whatever those delays: `max_in_flight` caps the sends of a key between their slot and
their release (so at most that many late ones can pile onto the regular flow), and
`after_previous_send` allows one in flight and counts the spacing from its release, not its slot
(so two messages to one chat arrive at least the spacing apart).

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import redis

from arv.config import Settings

# Two instants closer than this are the same instant (float round-off in `r + spacing - spacing`).
_EPSILON_S = 1e-6
# A send still in flight after this long is taken to have died with its worker; its key is free again.
IN_FLIGHT_HOLD_S = 60.0
_IN_FLIGHT = "o:"  # member prefix of a reservation whose send has not been released yet


@dataclass(frozen=True)
class Limit:
    """At most one send per `spacing_s` seconds under `key`, and at most `max_in_flight` sent but not
    yet released; with `after_previous_send`, one in flight and the spacing counted from its release."""

    key: str
    spacing_s: float
    after_previous_send: bool = False
    max_in_flight: int | None = None

    @property
    def in_flight_cap(self) -> int | None:
        return 1 if self.after_previous_send else self.max_in_flight

    @classmethod
    def per_second(cls, key: str, rate_per_s: float) -> Limit:
        return cls(key, 1.0 / rate_per_s)


@dataclass(frozen=True)
class Reservation:
    """A send slot: `granted` means it is ours `wait_s` seconds from now; otherwise nothing was
    reserved and `wait_s` says how long to wait before asking again. `token` names it for `release`."""

    granted: bool
    wait_s: float
    token: str = ""


class RateLimiter(Protocol):
    def reserve(self, limits: Sequence[Limit], *, max_wait_s: float) -> Reservation:
        """Reserve the earliest instant that keeps every limit, if it is at most `max_wait_s` away."""
        ...

    def release(self, limits: Sequence[Limit], reservation: Reservation) -> None:
        """Say that the send of `reservation` is over (sent or not), freeing its place in flight."""
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


def plan(
    now: float, limits: Sequence[Limit], entries: Sequence[dict[str, float]], *, max_wait_s: float
) -> tuple[bool, float]:
    """Whether a send may have a slot, and when (seconds from now) or how long to wait before asking
    again. `entries[i]` maps member -> instant for `limits[i]`, stale members already removed."""
    for limit, members in zip(limits, entries, strict=True):
        cap = limit.in_flight_cap
        if cap is not None and sum(m.startswith(_IN_FLIGHT) for m in members) >= cap:
            return False, limit.spacing_s
    reserved = [
        (limit.spacing_s, list(members.values())) for limit, members in zip(limits, entries, strict=True)
    ]
    slot = earliest_free_instant(now, reserved)
    if slot - now > max_wait_s:
        return False, slot - now
    return True, slot - now


def _is_stale(member: str, instant: float, limit: Limit, now: float) -> bool:
    if member.startswith(_IN_FLIGHT):
        return instant < now - IN_FLIGHT_HOLD_S
    return instant <= now - limit.spacing_s


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
        with self._locked() as state:
            now = time.time()
            entries = [self._live(state, limit, now) for limit in limits]
            granted, wait = plan(now, limits, entries, max_wait_s=max_wait_s)
            if not granted:
                return Reservation(False, wait)
            token = uuid.uuid4().hex
            for limit, members in zip(limits, entries, strict=True):
                members[(_IN_FLIGHT if limit.in_flight_cap is not None else "") + token] = now + wait
                state[limit.key] = members
            return Reservation(True, wait, token)

    def release(self, limits: Sequence[Limit], reservation: Reservation) -> None:
        with self._locked() as state:
            now = time.time()
            for limit in limits:
                members = state.get(limit.key, {})
                slot = members.pop(_IN_FLIGHT + reservation.token, None)
                if slot is not None:
                    members[reservation.token] = now if limit.after_previous_send else slot

    @staticmethod
    def _live(state: dict[str, dict[str, float]], limit: Limit, now: float) -> dict[str, float]:
        members = state.get(limit.key, {})
        return {m: t for m, t in members.items() if not _is_stale(m, t, limit, now)}

    @contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, float]]]:
        """The state, read and (when the block ends without error) written under the file lock."""
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read()
                yield state
                self._write({key: members for key, members in state.items() if members})
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            return json.loads(self.path.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return {}

    def _write(self, state: dict[str, dict[str, float]]) -> None:
        # Write-then-rename, so a worker killed mid-write leaves the old state, never half a file.
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)


# KEYS: one sorted set (member -> instant) per limit. ARGV[1]: max wait; ARGV[2]: token; ARGV[3]: hold
# of an in-flight send; then per key its spacing and its cap of sends in flight (0: none). Mirrors
# `plan`.
# Returns {granted, wait as a string} (Lua numbers would come back truncated to integers).
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max_wait, token, hold = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local eps = 0.000001
local spacing, cap, times = {}, {}, {}
local candidates = {now}
for i = 1, #KEYS do
  spacing[i] = tonumber(ARGV[2 + 2 * i])
  cap[i] = tonumber(ARGV[3 + 2 * i])
  times[i] = {}
  local flying = 0
  local rows = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  for j = 1, #rows, 2 do
    local member, at = rows[j], tonumber(rows[j + 1])
    local in_flight = string.sub(member, 1, 2) == 'o:'
    if (in_flight and at < now - hold) or ((not in_flight) and at <= now - spacing[i]) then
      redis.call('ZREM', KEYS[i], member)
    else
      if in_flight then flying = flying + 1 end
      times[i][#times[i] + 1] = at
      candidates[#candidates + 1] = at + spacing[i]
    end
  end
  if cap[i] > 0 and flying >= cap[i] then
    return {0, tostring(spacing[i])}
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
      for _, r in ipairs(times[i]) do
        if math.abs(r - c) < spacing[i] - eps then
          free = false
          break
        end
      end
      if not free then break end
    end
    if free then
      for i = 1, #KEYS do
        local member = token
        if cap[i] > 0 then member = 'o:' .. token end
        redis.call('ZADD', KEYS[i], c, member)
        redis.call('PEXPIRE', KEYS[i], math.ceil((c - now + math.max(spacing[i], hold)) * 1000))
      end
      return {1, tostring(c - now)}
    end
  end
end
return redis.error_reply('no free instant found')
"""

# KEYS: the keys of a reservation that cap sends in flight; ARGV[1]: its token; ARGV[1 + i]: 1 when
# KEYS[i] counts its spacing from the release. The in-flight member becomes a finished one, at the
# release time or at its slot.
_RELEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  local slot = redis.call('ZSCORE', KEYS[i], 'o:' .. ARGV[1])
  if slot then
    redis.call('ZREM', KEYS[i], 'o:' .. ARGV[1])
    if ARGV[1 + i] == '1' then
      redis.call('ZADD', KEYS[i], now, ARGV[1])
    else
      redis.call('ZADD', KEYS[i], slot, ARGV[1])
    end
  end
end
return 1
"""


class RedisRateLimiter:
    """Reservations in Redis sorted sets, made by one Lua script: shared by every worker everywhere.

    Parameters: `url` of the Redis server; `key_prefix` put before every key (the deployment's
    `redis_key_prefix`, so several deployments can share one server).
    """

    def __init__(self, url: str, *, key_prefix: str = "") -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        self.key_prefix = key_prefix
        self._reserve = self.client.register_script(_RESERVE_LUA)
        self._release = self.client.register_script(_RELEASE_LUA)

    def _key(self, limit: Limit) -> str:
        return f"{self.key_prefix}arv:rate:{limit.key}"

    def reserve(self, limits: Sequence[Limit], *, max_wait_s: float) -> Reservation:
        token = uuid.uuid4().hex
        args: list[str | float] = [max_wait_s, token, IN_FLIGHT_HOLD_S]
        for limit in limits:
            args += [limit.spacing_s, limit.in_flight_cap or 0]
        try:
            granted, wait = self._reserve(keys=[self._key(limit) for limit in limits], args=args)
        except redis.ConnectionError as exc:
            # The limiter is part of the channel: without it nothing may be sent, so wait and retry.
            raise ConnectionError(f"the rate limiter (Redis) is unreachable: {exc}") from exc
        return Reservation(bool(int(granted)), float(wait), token if int(granted) else "")

    def release(self, limits: Sequence[Limit], reservation: Reservation) -> None:
        capped = [limit for limit in limits if limit.in_flight_cap is not None]
        if capped and reservation.token:
            keys = [self._key(limit) for limit in capped]
            args = [reservation.token, *(1 if limit.after_previous_send else 0 for limit in capped)]
            # Unreachable Redis: the in-flight mark expires after IN_FLIGHT_HOLD_S on its own.
            with suppress(redis.ConnectionError):
                self._release(keys=keys, args=args)


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
