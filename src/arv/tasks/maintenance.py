"""The job sweep: takes back jobs whose worker died and re-publishes jobs whose message was lost."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task
from sqlalchemy import select

from arv.config import get_settings
from arv.db.models import Job
from arv.db.session import session_scope
from arv.services import jobs
from arv.tasks.app import QUEUES, broker_connection, get_celery_app
from arv.tasks.jobs import JobTask

log = structlog.get_logger(__name__)


def broker_queue_lengths() -> dict[str, int | None]:
    """Messages waiting in each queue, or None where the broker cannot say."""
    lengths: dict[str, int | None] = {}
    try:
        with broker_connection() as conn:
            channel = conn.default_channel
            for queue in QUEUES:
                try:
                    lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # noqa: BLE001 - an unknown length only means "republish to be safe"
                    lengths[queue] = None
    except Exception as exc:  # noqa: BLE001
        log.warning("sweep.broker_unreachable", error=str(exc))
        return {queue: None for queue in QUEUES}
    return lengths


@shared_task(name="sweep_jobs", soft_time_limit=60, time_limit=90)
def sweep_jobs() -> dict[str, Any]:
    settings = get_settings()
    lengths = broker_queue_lengths()
    with session_scope() as session:
        result, wakeups, failed_ids = jobs.sweep(
            session,
            max_attempts=settings.job_max_attempts,
            republish_after_s=settings.job_republish_after_s,
            queue_lengths=lengths,
        )
        tasks = get_celery_app().tasks
        for job in session.scalars(select(Job).where(Job.id.in_(failed_ids))):
            task = tasks.get(job.kind)
            if isinstance(task, JobTask):
                task.job_failed(session, job, jobs.LEASE_EXPIRED_ERROR)
    published = jobs.publish(wakeups)
    summary = {**result.to_dict(), "published": published}
    if any(summary.values()):
        log.info("sweep.done", **summary)
    return summary
