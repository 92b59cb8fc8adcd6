"""Marker tasks: compile the MindAR target of a portrait or of an AR content image."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import ARContent, Job, Portrait
from arv.services import markers
from arv.services.notify.outbox import notify_marker_failed
from arv.storage import get_storage
from arv.tasks.jobs import JobOutcome, JobTask

_settings = get_settings()


class MarkerTask(JobTask):
    """Compiles `marker_model`'s image named by the job into a `.mind` file in storage."""

    abstract = True
    marker_model: markers.MarkerSubject
    permanent_errors = (markers.MarkerInputError,)

    def execute(self, session: Session, job: Job) -> JobOutcome:
        storage = get_storage()
        result, replaced = markers.compile_marker(
            session, storage, self.marker_model, job, max_pixels=get_settings().max_image_pixels
        )
        cleanup = (lambda: storage.delete(replaced)) if replaced else None
        return JobOutcome(result=result, after_commit=cleanup)

    def job_failed(self, session: Session, job: Job, reason: str) -> None:
        if markers.mark_failed(session, self.marker_model, [job.id], reason):
            subject = markers.get_subject(session, self.marker_model, job.args["id"])
            if subject is not None:
                notify_marker_failed(session, subject, job_id=job.id, reason=reason)


_limits = {"soft_time_limit": _settings.marker_soft_time_limit_s, "time_limit": _settings.marker_time_limit_s}


@shared_task(bind=True, base=MarkerTask, name="generate_mind_marker_task", marker_model=Portrait, **_limits)
def generate_mind_marker_task(self: MarkerTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)


@shared_task(
    bind=True, base=MarkerTask, name="generate_ar_content_marker_task", marker_model=ARContent, **_limits
)
def generate_ar_content_marker_task(self: MarkerTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)
