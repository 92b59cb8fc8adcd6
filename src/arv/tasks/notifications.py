"""Notification tasks: deliver one delivery per job, and the periodic fan-out of rows written set-based."""

from __future__ import annotations

import random
from typing import Any

import structlog
from celery import shared_task
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import Job
from arv.db.session import session_scope
from arv.services import jobs
from arv.services.notify import delivery, outbox
from arv.services.notify.errors import DeliveryRefused, OutcomeUnknown, RetryAfter
from arv.services.notify.ratelimit import rate_limiter_for
from arv.tasks.jobs import JobOutcome, JobTask

log = structlog.get_logger(__name__)

_settings = get_settings()


class DeliverNotificationTask(JobTask):
    """Sends the delivery named by the job (`args.delivery_id`) through its channel, once."""

    abstract = True
    permanent_errors = (DeliveryRefused, OutcomeUnknown)

    def execute(self, session: Session, job: Job) -> JobOutcome:
        settings = get_settings()
        try:
            outcome = delivery.deliver(
                session,
                int(job.args["delivery_id"]),
                settings=settings,
                limiter=rate_limiter_for(settings),
                stale_claim_after_s=self.lease_seconds(),
            )
        except delivery.SendLater as exc:
            self._send_later(session, job, exc)
        return JobOutcome(result=outcome.to_dict())

    def _send_later(self, session: Session, job: Job, wait: delivery.SendLater) -> None:
        settings = get_settings()
        # A little jitter, so deliveries pushed back together do not all come back at one instant.
        delay = wait.delay_s + random.uniform(0.05, 0.5)
        if wait.counts_as_attempt:
            if job.attempts >= settings.job_max_attempts:
                # Out of attempts: let the base class fail the job (and, through job_failed, the delivery).
                raise RetryAfter(str(wait), wait.delay_s)
            jobs.retry_later(session, job, delay_s=delay, error=str(wait))
        else:
            jobs.postpone(session, job, delay_s=delay, reason=str(wait))
        session.commit()
        log.info("notification.send_later", job_id=job.id, delay_s=round(delay, 2), reason=str(wait))
        raise self.retry(countdown=delay, max_retries=None)

    def job_failed(self, session: Session, job: Job, reason: str) -> None:
        delivery.fail_unsent(session, int(job.args["delivery_id"]), reason)


@shared_task(
    bind=True,
    base=DeliverNotificationTask,
    name=outbox.DELIVER_TASK,
    soft_time_limit=_settings.notification_soft_time_limit_s,
    time_limit=_settings.notification_time_limit_s,
)
def deliver_notification(self: DeliverNotificationTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)


@shared_task(name="fan_out_notifications", soft_time_limit=120, time_limit=150)
def fan_out_notifications() -> dict[str, int]:
    """Deliveries and their jobs for notifications written without them (a safety net behind the
    periodic passes, which fan out their own rows right after inserting them)."""
    with session_scope() as session:
        created = outbox.fan_out_notifications(session)
    if created:
        log.info("notifications.fanned_out", deliveries=created)
    return {"deliveries_created": created}
