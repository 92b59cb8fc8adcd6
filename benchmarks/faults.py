"""Fault suite on ARV's production shape: a mixed load while one fault at a time is injected.

Every part runs as its own process on a fresh data folder (tests/support/stack.py). For each fault a
company of its own uploads portraits (some that cannot become markers, so `marker_failed` goes out by
e-mail and Telegram), re-compiles AR content and has a project close to expiry, all through the HTTP
API; then the fault is injected, the load stops, and the suite waits for the platform to settle. It
checks every record `ready` or `failed` with a reason, every delivery sent once (counted at the SMTP
and Bot API servers) or failed with a reason, no compile's effect twice, no object left unreferenced
after the collection pass, nothing left queued, running or sending; and prints one row per fault.

    .venv/bin/python -m benchmarks.faults [--faults kill-markers,redis-restart] [--list]

Exit status 1 when any fault lost, duplicated, orphaned or left stuck anything, or recovered slower
than its bound (the issue's acceptance: 30 s after a death or a return, 60 s with Beat dead).
"""

from __future__ import annotations

import argparse
import io
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.images import photo_jpeg  # noqa: E402
from tests.support.stack import (  # noqa: E402
    ProductionStack,
    faketime_unavailable,
    isolated_network,
    netns_unavailable,
    production_stack,
)

# Settle waits run this long past a fault's bound before what is left counts as lost or stuck.
SETTLE_SLACK_S = 30.0
# The load's pace: one request about every LOAD_TICK_S seconds.
LOAD_TICK_S = 0.7
# How long the load runs before a fault is injected, so work is in flight when it strikes.
WARMUP_S = 4.0
POLL_S = 0.5
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SETTLED = ("ready", "failed")
# Columns named *_key that hold something other than a storage key.
NOT_STORAGE_KEYS = {"dedupe_key", "key_hash"}


def flat_png() -> bytes:
    """A whole, valid image of one colour: accepted at upload, refused by the compiler with a reason."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 130, 140)).save(out, format="PNG")
    return out.getvalue()


# ---- the load ----------------------------------------------------------------------------------


class Load:
    """One company's traffic through the HTTP API, in a thread: uploads, re-compiles, failures."""

    def __init__(self, stack: ProductionStack, tag: str) -> None:
        self.stack = stack
        self.tag = tag
        self.http = httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30
        )
        self.refused = 0
        self.accepted = 0
        # Told the jobs a fault catches running, the moment it knows them (the watcher's restart clock).
        self.on_victims: Callable[[dict[str, int]], None] = lambda _victims: None
        self.refusals: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._photos = [photo_jpeg(640, 480, seed=i) for i in range(4)]
        self._flat = flat_png()
        company = self._post_json(
            "/api/companies",
            {
                "name": f"Fault {tag}",
                "contact_email": f"{tag}@photostudio.com",
                "telegram_chat_id": self.chat_id,
            },
        )
        self.company_id = int(company["id"])
        # The load piles up a backlog behind a broken part on purpose: no quota may refuse it (the
        # quotas have tests of their own, tests/test_quotas.py).
        self.http.patch(
            f"/api/companies/{self.company_id}",
            json={"quota_uploads_per_day": 0, "quota_compiles_in_flight": 0, "quota_transcodes_in_flight": 0},
        ).raise_for_status()
        soon = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        project = self._post_json(
            "/api/projects", {"company_id": self.company_id, "name": f"{tag} prints", "expires_at": soon}
        )
        self.project_id = int(project["id"])
        self.contents = [self._content(i) for i in range(2)]

    @property
    def chat_id(self) -> str:
        return f"chat-{self.tag}"

    def _post_json(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def _content(self, i: int) -> int:
        response = self.http.post(
            "/api/ar-content",
            data={"project_id": str(self.project_id), "title": f"{self.tag} content {i}"},
            files={"image": ("c.jpg", self._photos[i], "image/jpeg")},
        )
        response.raise_for_status()
        return int(response.json()["id"])

    def upload(self, data: bytes, name: str = "p.jpg", content_type: str = "image/jpeg") -> bool:
        try:
            response = self.http.post(
                "/api/portraits/upload",
                data={"company_id": str(self.company_id)},
                files={"file": (name, data, content_type)},
            )
        except httpx.HTTPError:
            response = None
        return self._count(response, 201)

    def recompile(self, content_id: int) -> bool:
        try:
            response = self.http.post(f"/api/ar-content/{content_id}/generate-marker")
        except httpx.HTTPError:
            response = None
        return self._count(response, 202)

    def _count(self, response: httpx.Response | None, expected: int) -> bool:
        ok = response is not None and response.status_code == expected
        if ok:
            self.accepted += 1
        else:
            self.refused += 1
            self.refusals[
                "no answer" if response is None else f"{response.status_code} {response.text[:80]}"
            ] += 1
        return ok

    def upload_big(self, n: int) -> None:
        """Photos of 12 megapixels: compiles slow enough to be caught running."""
        for i in range(n):
            self.upload(photo_jpeg(4000, 3000, seed=100 + i))

    def _step(self, i: int) -> None:
        action = i % 5
        if action in (0, 3):
            self.upload(self._photos[i % len(self._photos)])
        elif action == 1:
            self.recompile(self.contents[i % 2])
        elif action == 2:
            self.upload(self._flat, "flat.png", "image/png")
        else:
            # Two re-compiles back to back: the first is superseded, and must leave nothing behind.
            self.recompile(self.contents[0])
            self.recompile(self.contents[0])

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(LOAD_TICK_S):
            self._step(i)
            i += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"load-{self.tag}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.http.close()


# ---- watching the outcome ----------------------------------------------------------------------


@dataclass
class Snapshot:
    """What the database says about one company at one moment."""

    records: dict[str, tuple[str, str | None]]  # "portrait:1" -> (status, error)
    deliveries: dict[int, tuple[str, str, str | None]]  # id -> (channel, status, last_error)
    jobs: dict[str, tuple[str, int]]  # id -> (status, attempts)


def snapshot(stack: ProductionStack, company_id: int) -> Snapshot:
    records: dict[str, tuple[str, str | None]] = {}
    for table, kind in (("portraits", "portrait"), ("ar_contents", "content")):
        rows = stack.query(
            f"SELECT id, marker_status, marker_error FROM {table} WHERE company_id = %s", (company_id,)
        )
        records.update({f"{kind}:{rid}": (status, error) for rid, status, error in rows})
    deliveries = stack.query(
        "SELECT d.id, d.channel, d.status, d.last_error FROM notification_deliveries d"
        " JOIN notifications n ON n.id = d.notification_id WHERE n.company_id = %s",
        (company_id,),
    )
    jobs = stack.query("SELECT id, status, attempts FROM jobs WHERE company_id = %s", (company_id,))
    return Snapshot(
        records,
        {did: (channel, status, error) for did, channel, status, error in deliveries},
        {jid: (status, attempts) for jid, status, attempts in jobs},
    )


class Watcher:
    """Polls one company's records and deliveries, noting when each was last seen becoming settled
    and when each victim job was claimed again, on this process's monotonic clock."""

    def __init__(self, stack: ProductionStack, company_id: int) -> None:
        self.stack = stack
        self.company_id = company_id
        self.settled_since: dict[str, float] = {}
        self.last_unsettled: dict[str, float] = {}
        self.victims: dict[str, int] = {}  # job id -> attempts when its worker died
        self.restarted: dict[str, float] = {}
        self.latest: Snapshot | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def watch_victims(self, attempts: dict[str, int]) -> None:
        self.victims.update(attempts)

    def _observe(self) -> None:
        with suppress(Exception):  # the database may be the fault under way: look again later
            now = time.monotonic()
            snap = snapshot(self.stack, self.company_id)
            states = {key: status in SETTLED for key, (status, _) in snap.records.items()}
            states.update(
                {
                    f"delivery:{d}": status in ("sent", "failed")
                    for d, (_, status, _) in snap.deliveries.items()
                }
            )
            for key, settled in states.items():
                if not settled:
                    self.last_unsettled[key] = now
                    self.settled_since.pop(key, None)
                else:
                    self.settled_since.setdefault(key, now)
            for job_id, before in self.victims.items():
                status, attempts = snap.jobs.get(job_id, ("", before))
                if job_id not in self.restarted and attempts > before:
                    self.restarted[job_id] = now
            self.latest = snap

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self._observe()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._observe()


# ---- faults ------------------------------------------------------------------------------------


@dataclass
class Injection:
    """When recovery is measured from (a death, a return), and the jobs caught running at a death."""

    reference: float
    victims: dict[str, int] = field(default_factory=dict)
    note: str = ""
    # When the victims' worker was lost, if not at `reference` (a cut measured from its end).
    lost_at: float | None = None
    # Run after the settle wait and the checks: put back what the fault left changed (Beat, a clock).
    undo: Callable[[], object] | None = None


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    bound_s: float
    inject: Callable[[ProductionStack, Load], Injection]
    unavailable: Callable[[], str | None] = lambda: None


def running_marker_jobs(stack: ProductionStack) -> dict[str, int]:
    rows = stack.query("SELECT id, attempts FROM jobs WHERE queue = 'markers' AND status = 'running'")
    return {job_id: attempts for job_id, attempts in rows}


def _wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def catch_compiling(
    stack: ProductionStack, load: Load, worker: str, signum: int
) -> tuple[float, dict[str, int]]:
    """Send `signum` to `worker`'s group while it runs a compile: freeze it with SIGSTOP, look, and
    either strike or let it go and look again. Returns the moment of the strike and the victims."""
    part = stack.parts[worker]
    for _attempt in range(5):
        load.upload_big(3)
        if not _wait_for(lambda: running_marker_jobs(stack), timeout=30):
            continue
        part.signal_group(signal.SIGSTOP)
        victims = running_marker_jobs(stack)
        if victims:
            load.on_victims(victims)
            struck = time.monotonic()
            part.signal_group(signum)
            part.signal_group(signal.SIGCONT)
            return struck, victims
        part.signal_group(signal.SIGCONT)
    raise RuntimeError(f"no compile ran long enough on {worker} to be caught")


def kill_worker_mid_compile(stack: ProductionStack, load: Load) -> Injection:
    died, victims = catch_compiling(stack, load, "markers", signal.SIGKILL)
    stack.restart("markers")
    return Injection(died, victims)


def sigterm_worker_group(stack: ProductionStack, load: Load) -> Injection:
    signalled, victims = catch_compiling(stack, load, "markers", signal.SIGTERM)
    part = stack.parts["markers"]
    assert part.proc is not None
    try:
        exited = f"exited {part.proc.wait(timeout=30)} after SIGTERM"
    except subprocess.TimeoutExpired:
        exited = "still running 30 s after SIGTERM, killed"
    stack.restart("markers")
    return Injection(signalled, victims, note=exited)


def kill_notifications_worker(stack: ProductionStack, load: Load) -> Injection:
    for _ in range(3):
        load.upload(flat_png(), "flat.png", "image/png")

    def delivering() -> bool:
        rows = stack.query(
            "SELECT count(*) FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id"
            " WHERE n.company_id = %s AND d.status IN ('pending', 'sending')",
            (load.company_id,),
        )
        return bool(rows[0][0])

    _wait_for(delivering, timeout=30, interval=0.05)
    died = time.monotonic()
    stack.parts["notifications"].kill()
    stack.restart("notifications")
    return Injection(died)


def kill_beat(stack: ProductionStack, load: Load) -> Injection:
    died = time.monotonic()
    stack.parts["beat"].kill()
    time.sleep(3)
    stack.restart("beat")
    return Injection(died)


def restart_redis_empty(stack: ProductionStack, load: Load) -> Injection:
    stack.redis.kill()
    # Uploads go on while Redis is down: they must be accepted and become ready after it returns.
    for _ in range(4):
        load.upload(photo_jpeg(640, 480, seed=7))
        time.sleep(2)
    stack.redis.start()
    return Injection(time.monotonic(), note="down 8 s")


def terminate_db_connections(stack: ProductionStack, load: Load) -> Injection:
    terminated = 0
    for _ in range(5):
        load.upload(photo_jpeg(640, 480, seed=8))
        _wait_for(lambda: running_marker_jobs(stack), timeout=3)
        terminated += stack.terminate_db_connections()
        time.sleep(1)
    return Injection(time.monotonic(), note=f"{terminated} connections terminated")


def storage_down(down_s: float) -> Callable[[ProductionStack, Load], Injection]:
    def inject(stack: ProductionStack, load: Load) -> Injection:
        stack.cut_storage()
        time.sleep(down_s)
        stack.restore_storage()
        return Injection(time.monotonic(), note=f"down {down_s:g} s")

    return inject


def clock_skew(stack: ProductionStack, load: Load) -> Injection:
    stack.restart("markers", env=stack.skewed_env("-10s"))
    started = time.monotonic()
    load.upload_big(2)
    time.sleep(15)
    return Injection(
        started, note="markers worker 10 s behind", undo=lambda: stack.restart("markers", env=stack.env)
    )


def two_beats(stack: ProductionStack, load: Load) -> Injection:
    second = stack.start_second_beat()
    time.sleep(15)
    second.stop()
    return Injection(time.monotonic())


def beat_dead_worker_killed(stack: ProductionStack, load: Load) -> Injection:
    stack.parts["beat"].kill()
    died, victims = catch_compiling(stack, load, "markers", signal.SIGKILL)
    stack.restart("markers")
    return Injection(died, victims, note="Beat dead until checked", undo=lambda: stack.restart("beat"))


def network_partition(cut_s: float) -> Callable[[ProductionStack, Load], Injection]:
    def inject(stack: ProductionStack, load: Load) -> Injection:
        with isolated_network() as network:
            # Only the isolated worker takes compiles until it is cut off.
            stack.parts["markers"].stop()
            isolated = stack.start_isolated_worker(network)
            try:
                for _ in range(5):
                    load.upload_big(2)
                    if _wait_for(lambda: running_marker_jobs(stack), timeout=30):
                        break
                victims = running_marker_jobs(stack)
                load.on_victims(victims)
                network.cut()
                cut = time.monotonic()
                stack.restart("markers")
                time.sleep(cut_s)
                network.restore()
                restored = time.monotonic()
                # Back on the network, the isolated worker must not apply what another finished.
                time.sleep(10)
            finally:
                isolated.stop()
        # Its jobs are measured from the cut (they must come back while it lasts), the rest of the
        # load from the network's return.
        return Injection(restored, victims, note=f"cut {cut_s:g} s", lost_at=cut)

    return inject


def faults(*, storage_down_s: float = 60.0, partition_s: float = 60.0) -> dict[str, Fault]:
    listed = [
        Fault("kill-markers", "kill -9 of the markers worker mid-compile", 30, kill_worker_mid_compile),
        Fault(
            "kill-notifications",
            "kill -9 of the notifications worker while delivering",
            30,
            kill_notifications_worker,
        ),
        Fault("kill-beat", "kill -9 of Beat, back after 3 s", 30, kill_beat),
        Fault(
            "sigterm-markers",
            "SIGTERM to the markers worker's process group mid-compile",
            30,
            sigterm_worker_group,
        ),
        Fault(
            "redis-restart",
            "Redis killed, uploads while down, restarted with its data lost",
            30,
            restart_redis_empty,
        ),
        Fault(
            "db-terminate",
            "every database connection terminated during settlements",
            30,
            terminate_db_connections,
        ),
        Fault(
            "storage-down",
            f"storage refusing connections for {storage_down_s:g} s",
            30,
            storage_down(storage_down_s),
        ),
        Fault(
            "clock-skew",
            "the markers worker's clock 10 s behind the others",
            30,
            clock_skew,
            faketime_unavailable,
        ),
        Fault("two-beats", "a second Beat for 15 s", 30, two_beats),
        Fault(
            "beat-dead-worker-killed",
            "Beat dead while the markers worker is killed mid-compile",
            60,
            beat_dead_worker_killed,
        ),
        Fault(
            "network-partition",
            f"a markers worker in its own network namespace cut off for {partition_s:g} s",
            30,
            network_partition(partition_s),
            netns_unavailable,
        ),
    ]
    return {fault.name: fault for fault in listed}


# ---- checks ------------------------------------------------------------------------------------


@dataclass
class FaultReport:
    fault: str
    items: int = 0
    refused: int = 0
    lost: int = 0
    duplicated: int = 0
    orphaned: int = 0
    stuck: int = 0
    recovery: list[float] = field(default_factory=list)
    restart_s: float | None = None
    bound_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def recovery_median(self) -> float | None:
        return statistics.median(self.recovery) if self.recovery else None

    @property
    def recovery_max(self) -> float | None:
        return max(self.recovery) if self.recovery else None

    @property
    def within_bound(self) -> bool:
        slowest = max([self.recovery_max or 0.0, self.restart_s or 0.0])
        return slowest <= self.bound_s

    @property
    def passed(self) -> bool:
        if self.skipped:
            return True
        return not (self.lost or self.duplicated or self.orphaned or self.stuck) and self.within_bound


def settled_everywhere(stack: ProductionStack, load: Load) -> bool:
    snap = snapshot(stack, load.company_id)
    return (
        all(status in SETTLED for status, _ in snap.records.values())
        and all(status in ("sent", "failed") for _, status, _ in snap.deliveries.values())
        and all(status not in ("queued", "running") for status, _ in snap.jobs.values())
        and not missing_notifications(stack, load.company_id)
    )


def missing_notifications(stack: ProductionStack, company_id: int) -> int:
    """Failed markers without their `marker_failed` notice, and notices without both deliveries."""
    failed_without = stack.query(
        "SELECT count(*) FROM portraits p WHERE p.company_id = %s AND p.marker_status = 'failed'"
        " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.notification_type = 'marker_failed'"
        "  AND n.payload ->> 'portrait_id' = p.id::text)",
        (company_id,),
    )[0][0]
    short_of_channels = stack.query(
        "SELECT count(*) FROM notifications n WHERE n.company_id = %s"
        " AND (SELECT count(*) FROM notification_deliveries d WHERE d.notification_id = n.id) < 2",
        (company_id,),
    )[0][0]
    return int(failed_without) + int(short_of_channels)


def referenced_keys(stack: ProductionStack) -> set[str]:
    """Every storage key any row names: each text column called *_key, found in the live schema."""
    columns = stack.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND column_name LIKE '%%\\_key' AND data_type IN ('character varying', 'text')"
    )
    keys: set[str] = set()
    for table, column in columns:
        if column in NOT_STORAGE_KEYS:
            continue
        keys.update(
            k for (k,) in stack.query(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')
        )
    return keys


def collection_pass(stack: ProductionStack) -> str | None:
    """Run the orphan collection pass now; a note when the platform has none."""
    try:
        stack.run_arv("tasks", "run", "collect_orphaned_objects", "--inline")
    except RuntimeError as exc:
        if "unknown task" in str(exc):
            return "no collect_orphaned_objects task: objects counted without a collection pass"
        return f"collection pass failed: {str(exc)[-300:]}"
    return None


def check(
    stack: ProductionStack,
    load: Load,
    watcher: Watcher,
    injection: Injection,
    fault: Fault,
    seen_orphans: set[str],
) -> FaultReport:
    report = FaultReport(fault.name, bound_s=fault.bound_s, refused=load.refused)
    snap = watcher.latest or snapshot(stack, load.company_id)
    report.items = len(snap.records) + len(snap.deliveries)

    lost_records = [
        key
        for key, (status, error) in snap.records.items()
        if status not in SETTLED or (status == "failed" and not error)
    ]
    report.lost += len(lost_records)
    report.lost += missing_notifications(stack, load.company_id)
    report.stuck += sum(1 for status, _ in snap.jobs.values() if status in ("queued", "running"))
    report.stuck += sum(1 for _, status, _ in snap.deliveries.values() if status == "sending")
    report.lost += sum(
        1
        for _, status, error in snap.deliveries.values()
        if status == "pending" or (status == "failed" and not error)
    )
    if lost_records:
        report.notes.append(f"unsettled: {', '.join(sorted(lost_records)[:6])}")
    stuck_jobs = stack.query(
        "SELECT kind, status, attempts FROM jobs WHERE company_id = %s AND status IN ('queued', 'running')",
        (load.company_id,),
    )
    if stuck_jobs:
        report.notes.append(
            "stuck jobs: " + ", ".join(f"{k} {s} ({a} attempts)" for k, s, a in stuck_jobs[:4])
        )
    if load.refusals:
        report.notes.append(
            "refused requests: " + ", ".join(f"{n}x {why}" for why, n in load.refusals.most_common(3))
        )

    # Each delivery as the servers saw it: e-mails by their X-ARV-Delivery header, Telegram per chat.
    with stack.mail.lock:
        mailed = Counter(str(m["X-ARV-Delivery"]) for m in stack.mail.messages)
    telegrams = len(stack.bot.messages_to(load.chat_id))
    sent_telegrams = 0
    for delivery_id, (channel, status, _) in snap.deliveries.items():
        if channel == "email":
            received = mailed.get(str(delivery_id), 0)
            report.duplicated += max(0, received - 1)
            report.lost += 1 if status == "sent" and received == 0 else 0
        elif status == "sent":
            sent_telegrams += 1
    report.duplicated += max(0, telegrams - sent_telegrams)
    report.lost += max(0, sent_telegrams - telegrams)
    twice_notified = stack.query(
        "SELECT count(*) FROM (SELECT payload ->> 'portrait_id' FROM notifications WHERE company_id = %s"
        " AND notification_type = 'marker_failed' GROUP BY 1 HAVING count(*) > 1) twice",
        (load.company_id,),
    )[0][0]
    report.duplicated += int(twice_notified)

    # Orphans, once the objects are past the collection's grace period.
    time.sleep(float(stack.env.get("ARV_ORPHAN_GRACE_S", "5")) + 1)
    note = collection_pass(stack)
    if note:
        report.notes.append(note)
    unreferenced = stack.storage_keys() - referenced_keys(stack)
    new_orphans = unreferenced - seen_orphans
    seen_orphans |= unreferenced
    report.orphaned = len(new_orphans)
    if new_orphans:
        report.notes.append(describe_orphans(stack, new_orphans))

    affected = [key for key, at in watcher.last_unsettled.items() if at >= injection.reference - POLL_S]
    report.recovery = [
        max(0.0, watcher.settled_since[key] - injection.reference)
        for key in affected
        if key in watcher.settled_since
    ]
    if injection.victims:
        restarts = [watcher.restarted.get(job_id) for job_id in injection.victims]
        lost_at = injection.lost_at if injection.lost_at is not None else injection.reference
        known = [at - lost_at for at in restarts if at is not None]
        report.restart_s = max(known) if len(known) == len(restarts) else float("inf")
    if injection.note:
        report.notes.append(injection.note)
    return report


def describe_orphans(stack: ProductionStack, keys: set[str]) -> str:
    """The orphans, each with the state of the job its key names (a superseded or retried compile)."""
    shown = []
    for key in sorted(keys)[:4]:
        match = UUID.search(key)
        rows = (
            stack.query("SELECT kind, status, attempts FROM jobs WHERE id = %s", (match.group(0),))
            if match
            else []
        )
        shown.append(f"{key} (job {rows[0][0]} {rows[0][1]}, {rows[0][2]} attempts)" if rows else key)
    return "orphans: " + ", ".join(shown)


# ---- running -----------------------------------------------------------------------------------


def run_fault(
    stack: ProductionStack, fault: Fault, seen_orphans: set[str], log: Callable[[str], None]
) -> FaultReport:
    reason = fault.unavailable()
    if reason:
        return FaultReport(fault.name, bound_s=fault.bound_s, skipped=reason)
    log(f"-- {fault.name}: {fault.description}")
    load = Load(stack, fault.name)
    watcher = Watcher(stack, load.company_id)
    load.on_victims = watcher.watch_victims
    watcher.start()
    load.start()
    time.sleep(WARMUP_S)
    try:
        injection = fault.inject(stack, load)
    finally:
        load.stop()
    deadline = injection.reference + fault.bound_s + SETTLE_SLACK_S
    while time.monotonic() < deadline:
        with suppress(Exception):
            if settled_everywhere(stack, load):
                break
        time.sleep(POLL_S)
    watcher.stop()
    report = check(stack, load, watcher, injection, fault, seen_orphans)
    if injection.undo is not None:
        injection.undo()
    log(format_row(report))
    return report


def run_faults(
    names: list[str], workdir: Path, *, log: Callable[[str], None] = print, **options: float
) -> list[FaultReport]:
    chosen = faults(**options)
    unknown = [name for name in names if name not in chosen]
    if unknown:
        raise ValueError(f"unknown faults: {', '.join(unknown)}; --list shows them")
    seen_orphans: set[str] = set()
    with production_stack(workdir) as stack:
        # Objects from before the first fault are not its orphans.
        seen_orphans |= stack.storage_keys() - referenced_keys(stack)
        return [run_fault(stack, chosen[name], seen_orphans, log) for name in names]


HEADER = (
    f"{'fault':26s} {'items':>5s} {'refused':>7s} {'lost':>4s} {'dup':>4s} {'orphan':>6s} {'stuck':>5s}"
    f" {'rec p50 s':>9s} {'rec max s':>9s} {'restart s':>9s} {'bound':>5s}  verdict"
)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_row(report: FaultReport) -> str:
    if report.skipped:
        return f"{report.fault:26s} skipped: {report.skipped}"
    verdict = "ok" if report.passed else "FAIL"
    row = (
        f"{report.fault:26s} {report.items:5d} {report.refused:7d} {report.lost:4d} {report.duplicated:4d}"
        f" {report.orphaned:6d} {report.stuck:5d} {_seconds(report.recovery_median):>9s}"
        f" {_seconds(report.recovery_max):>9s} {_seconds(report.restart_s):>9s}"
        f" {report.bound_s:5.0f}  {verdict}"
    )
    return row + "".join(f"\n{'':28s}{note}" for note in report.notes)


@contextmanager
def scratch_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="arv-faults-"))
    yield folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faults", default="", help="comma-separated faults to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--storage-down-s", type=float, default=60.0)
    parser.add_argument("--partition-s", type=float, default=60.0)
    args = parser.parse_args()
    chosen = faults(storage_down_s=args.storage_down_s, partition_s=args.partition_s)
    if args.list:
        for fault in chosen.values():
            reason = fault.unavailable()
            print(f"{fault.name:26s} {fault.description}" + (f"  (skipped here: {reason})" if reason else ""))
        return
    names = [n.strip() for n in args.faults.split(",") if n.strip()] or list(chosen)
    with scratch_folder() as workdir:
        print(f"logs of every part under {workdir}")
        print(HEADER)
        reports = run_faults(
            names,
            workdir,
            log=lambda line: print(line, flush=True),
            storage_down_s=args.storage_down_s,
            partition_s=args.partition_s,
        )
    print("\n" + HEADER)
    for report in reports:
        print(format_row(report).split("\n")[0])
    sys.exit(0 if all(r.passed for r in reports) else 1)


if __name__ == "__main__":
    main()
