"""Running ARV in tests: environments for each backend mix, and real Celery worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def reset_caches() -> None:
    """Forget every cached settings-derived object, after the environment changed."""
    from arv.config import get_settings
    from arv.db.session import reset_engine
    from arv.jobs.publisher import use_publisher
    from arv.storage import get_storage
    from arv.tasks.app import get_celery_app

    get_settings.cache_clear()
    use_publisher(None)
    reset_engine()
    get_storage.cache_clear()
    get_celery_app.cache_clear()


@dataclass
class Worker:
    """A `celery worker` process of the project's app, started with the test's environment."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill_hard(self) -> None:
        """What a crash or an OOM kill looks like: SIGKILL to the worker and all its children."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_hard()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class WorkerPool:
    env: dict[str, str]
    log_dir: Path
    workers: list[Worker] = field(default_factory=list)

    def start(
        self,
        queues: str = "markers,notifications,default,videos",
        *,
        concurrency: int = 1,
        beat: bool = False,
        extra: list[str] | None = None,
    ) -> Worker:
        name = f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}"
        log_path = self.log_dir / f"{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "arv.tasks.app",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]
        if beat:
            cmd += ["-B", "-s", str(self.log_dir / f"{name}-beat-schedule")]
        cmd += extra or []
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
            )
        worker = Worker(proc, log_path)
        self.workers.append(worker)
        self._wait_ready(worker)
        return worker

    def _wait_ready(self, worker: Worker, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in worker.log():
                return
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{worker.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{worker.log()[-3000:]}")

    def stop_all(self) -> None:
        """End every worker still running once the test is done with them, with SIGKILL to each group.

        Nothing is asserted after this point, and Celery's warm shutdown costs 5-7 s a worker even when
        idle (its pool threads and the consumer loop notice the stop in steps of 1-2 s); a test that is
        about the warm shutdown sends SIGTERM itself and waits for the exit.
        """
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.kill_hard()


@contextmanager
def worker_pool(env: dict[str, str], log_dir: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool({**os.environ, **env}, log_dir)
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy; return that, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)
