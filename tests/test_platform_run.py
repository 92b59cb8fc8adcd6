"""`arv run` and `arv beat` on the embedded default: a part that dies is restarted, a fresh data dir is
created, and Ctrl-C still stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from arv.cli.supervisor import MAX_RESTART_DELAY_S, STOP_TIMEOUT_S, restart_delay
from tests.support.platform import REPO, wait_until
from tests.support.servers import POSTGRES_ADMIN_URL, REDIS_URL, free_port


def started_pids(log: str, part: str) -> list[int]:
    return [int(pid) for pid in re.findall(rf"^{part} started, pid (\d+)$", log, re.MULTILINE)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def arv_process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m arv <args>` with `env` as its whole ARV_ environment, its output in `log_path`."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arv", *args],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("ARV_")}, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # The parts of `arv run` live in process groups of their own: none may outlive a failed test.
        for pid in re.findall(r"started, pid (\d+)", log_path.read_text(errors="replace")):
            with suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)


def test_restart_delay_doubles_while_a_part_keeps_dying_up_to_its_cap() -> None:
    delays = [restart_delay(n) for n in range(1, 10)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays == sorted(delays)
    assert delays[-1] == MAX_RESTART_DELAY_S


def test_run_restarts_a_worker_killed_with_sigkill_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "run.log"
    # The embedded default: nothing set but a data dir that does not exist yet.
    env = {"ARV_DATA_DIR": str(tmp_path / "fresh" / "data")}
    with arv_process(["run", "--port", str(port)], env, log_path) as run:

        def log() -> str:
            return log_path.read_text(errors="replace")

        def healthy() -> bool:
            with suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            return False

        wait_until(healthy, timeout=120, what="API healthy")
        wait_until(lambda: re.search(r"default@\S+ ready\.", log()), timeout=60, what="default worker ready")
        [first] = started_pids(log(), "default")
        os.kill(first, signal.SIGKILL)

        wait_until(lambda: len(started_pids(log(), "default")) == 2, timeout=30, what="default restarted")
        assert re.search(r"^default exited with code -9; restarting it in 1 s$", log(), re.MULTILINE)
        second = started_pids(log(), "default")[1]
        assert second != first and alive(second)
        # The killed worker's pool processes went with it: its process group empties (once init has
        # reaped what the supervisor killed).
        wait_until(lambda: not group_alive(first), timeout=15, what="killed worker's group gone")
        wait_until(
            lambda: len(re.findall(r"default@\S+ ready\.", log())) == 2, timeout=60, what="new worker ready"
        )
        assert healthy()
        # Only the killed part was restarted.
        assert all(
            len(started_pids(log(), part)) == 1 for part in ("api", "markers", "notifications", "beat")
        )

        parts = [
            pid for part in ("api", "markers", "notifications", "beat") for pid in started_pids(log(), part)
        ]
        run.send_signal(signal.SIGINT)
        begun = time.monotonic()
        assert run.wait(timeout=STOP_TIMEOUT_S + 10) == 0
        assert time.monotonic() - begun < STOP_TIMEOUT_S + 5
        assert [pid for pid in [*parts, second] if alive(pid)] == []


@pytest.mark.parametrize("stack", ["embedded", "servers"])
def test_beat_and_worker_start_on_a_data_dir_that_does_not_exist(tmp_path: Path, stack: str) -> None:
    data_dir = tmp_path / "not" / "yet" / "data"
    env = {"ARV_DATA_DIR": str(data_dir)}
    if stack == "servers":
        # Nothing else creates the data dir on this stack: no SQLite file, no broker folder. Beat and
        # the worker never query the database at start, so the server's own URL does.
        env |= {
            "ARV_DATABASE_URL": POSTGRES_ADMIN_URL,
            "ARV_BROKER_URL": REDIS_URL,
            "ARV_RESULT_BACKEND": REDIS_URL,
            "ARV_REDIS_KEY_PREFIX": f"arvtest-fresh-{os.getpid()}-{tmp_path.name}:",
        }
    with (
        arv_process(["beat"], env, tmp_path / "beat.log") as beat,
        arv_process(
            ["worker", "-c", "1", "-n", f"fresh{os.getpid()}@%h"], env, tmp_path / "worker.log"
        ) as worker,
    ):
        wait_until(
            lambda: (
                "ready." in (tmp_path / "worker.log").read_text(errors="replace") or worker.poll() is not None
            ),
            timeout=60,
            what="worker ready",
        )
        schedule = data_dir / "beat-schedule"
        wait_until(
            lambda: (
                any(Path(f"{schedule}{s}").exists() for s in ("", ".db", ".dat")) or beat.poll() is not None
            ),
            timeout=30,
            what="beat's schedule file",
        )
        time.sleep(3)
        assert beat.poll() is None, (tmp_path / "beat.log").read_text(errors="replace")[-2000:]
        assert worker.poll() is None, (tmp_path / "worker.log").read_text(errors="replace")[-2000:]
