"""The heartbeat: one thread per process renews the leases of the jobs that process is running.

A claim gives its attempt a short lease (`ARV_JOB_LEASE_S`); while the attempt runs, this thread
renews it every `ARV_JOB_HEARTBEAT_S`. A worker that dies, is killed or is cut off from the database
stops renewing, and its jobs are free for the sweep within seconds, whatever their time limits.

A live but stuck attempt is not kept alive for ever: past its hard time limit the heartbeat stops
renewing it, so its lease lapses and the job runs again elsewhere (a prefork worker kills such a
child itself). Where the pool cannot end a task (a thread pool), the heartbeat raises the soft
time-limit exception in the task's own thread at the soft limit, as prefork's signal would: Python
code stops at its next instruction, and a blocking network call at its own timeout.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from arv.config import Settings
from arv.db.models import Job
from arv.db.session import get_engine
from arv.jobs import store
from arv.jobs.kinds import TimeLimits

log = structlog.get_logger(__name__)


@dataclass
class _Held:
    job_id: str
    attempt: int
    thread_id: int
    soft_deadline: float
    hard_deadline: float
    # Raised in the task's thread at the soft deadline where the pool does not do it; None otherwise.
    interrupt_with: type[BaseException] | None
    interrupted: bool = False


class Heartbeat:
    """Renews the leases of the attempts held with `hold`; started on first use in each process."""

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        self._failing = False
        # The timing of the latest `hold`'s settings: the thread reads no settings of its own, so an
        # idle heartbeat touches nothing process-wide.
        self._heartbeat_s = 0.0
        self._lease_s = 0.0

    @contextmanager
    def hold(
        self,
        job: Job,
        limits: TimeLimits,
        settings: Settings,
        *,
        interrupt_with: type[BaseException] | None = None,
    ) -> Iterator[None]:
        """Keep `job`'s lease (this attempt's) alive while the block runs, up to its hard limit."""
        now = time.monotonic()
        held = _Held(
            job.id,
            job.attempts,
            threading.get_ident(),
            now + limits.soft_s,
            now + limits.hard_s,
            # Prefork runs a task in its process's main thread and enforces the limits by signal.
            interrupt_with if threading.current_thread() is not threading.main_thread() else None,
        )
        key = id(held)
        with self._lock:
            was_idle = not self._held
            self._held[key] = held
            self._heartbeat_s, self._lease_s = settings.job_heartbeat_s, settings.job_lease_s
            self._ensure_thread()
            if was_idle:
                self._wake.set()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def _ensure_thread(self) -> None:
        # A forked child inherits the parent's memory but none of its threads.
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="arv-heartbeat", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                interval = self._heartbeat_s if self._held else None
            # Idle, the thread sleeps until a `hold` wakes it, then beats at that hold's interval.
            if self._wake.wait(interval):
                self._wake.clear()
                continue
            self._beat()

    def _beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            held = list(self._held.values())
            lease_s = self._lease_s
            # Under the lock: a job that has left `hold` is never interrupted (its thread runs another).
            for entry in held:
                if entry.interrupt_with is not None and not entry.interrupted and now > entry.soft_deadline:
                    entry.interrupted = True
                    _raise_in_thread(entry.thread_id, entry.interrupt_with)
                    log.warning("job.interrupted", job_id=entry.job_id, reason="soft time limit")
        live = [(e.job_id, e.attempt) for e in held if now < e.hard_deadline]
        if not live:
            return
        try:
            with get_engine().connect() as connection:
                store.renew_leases(connection, live, lease_s=lease_s)
        except Exception as exc:  # noqa: BLE001 - the database may be away; the next beat tries again
            if not self._failing:
                log.warning("job.heartbeat_failed", jobs=len(live), error=f"{type(exc).__name__}: {exc}")
            self._failing = True
        else:
            if self._failing:
                log.info("job.heartbeat_restored", jobs=len(live))
            self._failing = False


def _raise_in_thread(thread_id: int, exception: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))


# The process's heartbeat.
HEARTBEAT = Heartbeat()
