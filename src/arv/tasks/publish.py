"""Sending a job's wake-up message to its queue."""

from __future__ import annotations

from arv.services.jobs import Wakeup
from arv.tasks.app import broker_connection, get_celery_app


def send_wakeup(wakeup: Wakeup) -> None:
    """Publish once, without kombu's connection retries: a down broker must not stall an upload.

    The result backend is left out (`ignore_result`): the job row holds the outcome, and subscribing
    to a Redis result channel that is down would block the caller for its reconnect attempts.
    """
    with broker_connection() as connection:
        get_celery_app().send_task(
            wakeup.task_name,
            args=[wakeup.job_id],
            task_id=wakeup.job_id,
            queue=wakeup.queue,
            routing_key=wakeup.queue,
            countdown=wakeup.countdown,
            retry=False,
            ignore_result=True,
            connection=connection,
        )
