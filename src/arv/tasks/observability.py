"""One log line per task start and end (task id, queue, duration, outcome), and the task metrics."""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun, worker_process_init

from arv.db.session import reset_engine
from arv.metrics import TASK_SECONDS, TASKS

log = structlog.get_logger("arv.tasks")
_started: dict[str, float] = {}


def _queue_of(task: Any) -> str:
    delivery = getattr(task.request, "delivery_info", None) or {}
    return str(delivery.get("routing_key") or getattr(task, "queue", None) or "default")


@task_prerun.connect
def _task_started(task_id: str, task: Any, **_: Any) -> None:
    _started[task_id] = time.monotonic()
    log.info("task.start", task_id=task_id, task=task.name, queue=_queue_of(task))


@task_postrun.connect
def _task_finished(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    duration = time.monotonic() - started if started is not None else 0.0
    queue = _queue_of(task)
    outcome = (state or "UNKNOWN").lower()
    TASKS.labels(queue, task.name, outcome).inc()
    TASK_SECONDS.labels(queue, task.name, outcome).observe(duration)
    log.info(
        "task.end",
        task_id=task_id,
        task=task.name,
        queue=queue,
        duration_s=round(duration, 3),
        outcome=outcome,
    )


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # A forked pool child must not share its parent's database connections.
    reset_engine(close=False)
