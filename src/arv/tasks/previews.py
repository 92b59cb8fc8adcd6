"""Preview tasks: thumbnails of uploaded images and poster frames of uploaded videos."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import Job
from arv.services import previews
from arv.storage import get_storage
from arv.tasks.jobs import JobOutcome, JobTask

_settings = get_settings()
_limits = {
    "soft_time_limit": _settings.default_soft_time_limit_s,
    "time_limit": _settings.default_time_limit_s,
}


class ThumbnailTask(JobTask):
    """Stores the thumbnail of the portrait or AR content image named by the job."""

    abstract = True
    permanent_errors = (previews.PreviewInputError,)

    def execute(self, session: Session, job: Job) -> JobOutcome:
        result = previews.generate_thumbnail(
            session, get_storage(), job, max_px=get_settings().thumbnail_max_px
        )
        return JobOutcome(result=result)


class PosterTask(JobTask):
    """Stores the poster frame of the video named by the job, or says on the video why there is none."""

    abstract = True
    permanent_errors = (previews.PreviewInputError,)

    def execute(self, session: Session, job: Job) -> JobOutcome:
        result = previews.generate_poster(
            session, get_storage(), job, timeout_s=get_settings().poster_timeout_s
        )
        return JobOutcome(result=result)

    def job_failed(self, session: Session, job: Job, reason: str) -> None:
        previews.record_poster_failure(session, job.args["video_id"], reason)


@shared_task(bind=True, base=ThumbnailTask, name=previews.THUMBNAIL_TASK, **_limits)
def generate_thumbnail(self: ThumbnailTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)


@shared_task(bind=True, base=PosterTask, name=previews.POSTER_TASK, **_limits)
def generate_video_poster(self: PosterTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)
