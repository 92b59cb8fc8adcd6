"""Every worker offers to sweep: a thread in the worker's main process, so recovery needs no Beat.

Each offer is a conditional upsert on `task_runs` (arv.jobs.sweep.offer_to_sweep): of all the workers
offering within one `ARV_SWEEP_INTERVAL_S`, one sweeps. A worker that dies takes its thread with it,
and the others go on; Beat's own `sweep_jobs` messages are one more offer.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import structlog
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from arv.config import get_settings
from arv.jobs.sweep import offer_to_sweep
from arv.tasks.broker import queue_lengths

log = structlog.get_logger(__name__)

_stop = threading.Event()


def sweep_in_background(app: Celery) -> threading.Thread:
    """Start this process's sweeping thread; it runs until `worker_shutdown` (or the process ends)."""
    _stop.clear()

    def loop() -> None:
        settings = get_settings()
        # Offers spread over the interval: workers started together do not all ask at one instant.
        while not _stop.wait(settings.sweep_interval_s * random.uniform(0.5, 1.0)):
            try:
                offer_to_sweep(settings, lambda: queue_lengths(app))
            except Exception as exc:  # noqa: BLE001 - the database may be away; offer again later
                log.warning("sweep.failed", error=f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=loop, name="arv-sweeper", daemon=True)
    thread.start()
    return thread


@worker_ready.connect
def _start_sweeping(sender: Any, **_: Any) -> None:
    sweep_in_background(sender.app)


@worker_shutdown.connect
def _stop_sweeping(**_: Any) -> None:
    _stop.set()
