"""Sending jobs' wake-up messages to their queues."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from arv.services.jobs import Wakeup
from arv.tasks.app import broker_connection, get_celery_app

log = structlog.get_logger(__name__)


def send_wakeups(wakeups: Sequence[Wakeup]) -> int:
    """Publish each wake-up once over one connection; returns how many were sent.

    A broker that is down is logged, not raised: the sweep publishes later. No kombu connection
    retries (a down broker must not stall an upload), and no result backend (`ignore_result`): the job
    row holds the outcome, and subscribing to a Redis result channel that is down would block.
    """
    if not wakeups:
        return 0
    app = get_celery_app()
    sent = 0
    try:
        with broker_connection() as connection, connection.Producer() as producer:
            for wakeup in wakeups:
                app.send_task(
                    wakeup.task_name,
                    args=[wakeup.job_id],
                    task_id=wakeup.job_id,
                    queue=wakeup.queue,
                    routing_key=wakeup.queue,
                    countdown=wakeup.countdown,
                    retry=False,
                    ignore_result=True,
                    producer=producer,
                )
                sent += 1
    except Exception as exc:  # noqa: BLE001 - any broker failure means "publish later"
        log.warning("job.publish_failed", sent=sent, unsent=len(wakeups) - sent, error=str(exc))
    return sent
