"""Sending a job's wake-up message to its queue."""

from __future__ import annotations

from arv.services.jobs import Wakeup
from arv.tasks.app import get_celery_app


def send_wakeup(wakeup: Wakeup) -> None:
    """Publish once, without kombu's connection retries: a down broker must not stall an upload."""
    get_celery_app().send_task(
        wakeup.task_name,
        args=[wakeup.job_id],
        task_id=wakeup.job_id,
        queue=wakeup.queue,
        routing_key=wakeup.queue,
        countdown=wakeup.countdown,
        retry=False,
    )
