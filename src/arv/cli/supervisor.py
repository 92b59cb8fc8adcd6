"""Keeps the processes of `arv run` running: a part that exits is started again, after a pause that
grows while it keeps dying, until the platform is told to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass

import typer

# The pause before restarting a part that died; it doubles with each death in a row, up to the cap.
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
# A part that ran at least this long before it died counts as healthy: its next pause is the first.
HEALTHY_RUN_S = 60.0
# Asked to stop, the parts get this long in all before they are killed.
STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.3


def restart_delay(deaths_in_a_row: int) -> float:
    """Seconds to wait before the restart that follows the `deaths_in_a_row`-th death in a row (>= 1)."""
    return min(FIRST_RESTART_DELAY_S * 2 ** (deaths_in_a_row - 1), MAX_RESTART_DELAY_S)


@dataclass
class Part:
    """One process of the platform: its name in the log, its command, and its state."""

    name: str
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    deaths_in_a_row: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts `parts` with `env` and restarts any that exits, until `request_stop` (a signal handler
    may call it); then stops them all within STOP_TIMEOUT_S.

    Each part runs in a process group of its own: a part's helpers (a worker's pool processes) go
    with it when it is stopped or restarted, and a Ctrl-C on the terminal reaches the parts only
    through the supervisor, which stops them in order.
    """

    def __init__(self, parts: dict[str, list[str]], *, env: dict[str, str]) -> None:
        self.parts = [Part(name, command) for name, command in parts.items()]
        self.env = env
        self.stopping = False

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> None:
        """Start every part and keep them running; return once all have stopped after `request_stop`."""
        for part in self.parts:
            self._start(part)
        while not self.stopping:
            now = time.monotonic()
            for part in self.parts:
                if self.stopping:
                    break
                if part.restart_at is not None:
                    if now >= part.restart_at:
                        self._start(part)
                elif part.proc is not None and part.proc.poll() is not None:
                    self._schedule_restart(part, now)
            time.sleep(POLL_INTERVAL_S)
        self._stop_all()

    def _start(self, part: Part) -> None:
        part.proc = subprocess.Popen(part.command, env=self.env, process_group=0)
        part.started_at = time.monotonic()
        part.restart_at = None
        typer.echo(f"{part.name} started, pid {part.proc.pid}", err=True)

    def _schedule_restart(self, part: Part, now: float) -> None:
        assert part.proc is not None
        _kill_group(part.proc)
        part.deaths_in_a_row = 1 if now - part.started_at >= HEALTHY_RUN_S else part.deaths_in_a_row + 1
        delay = restart_delay(part.deaths_in_a_row)
        part.restart_at = now + delay
        typer.secho(
            f"{part.name} exited with code {part.proc.returncode}; restarting it in {delay:g} s",
            fg="red",
            err=True,
        )

    def _stop_all(self) -> None:
        running = [p.proc for p in self.parts if p.proc is not None and p.proc.poll() is None]
        for proc in running:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in running:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for part in self.parts:
            if part.proc is not None:
                _kill_group(part.proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of a part: its main process if still there, and any helper it left behind."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
