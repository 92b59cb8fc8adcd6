"""The QR code task: draws the code of a content's public page when the content is created."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import Job
from arv.services import qr_codes
from arv.storage import get_storage
from arv.tasks.jobs import JobOutcome, JobTask

_settings = get_settings()


class QRCodeTask(JobTask):
    """Stores the PNG and SVG QR codes of the AR content named by the job."""

    abstract = True

    def execute(self, session: Session, job: Job) -> JobOutcome:
        result = qr_codes.generate_qr_code(session, get_storage(), job, base_url=get_settings().api_base_url)
        return JobOutcome(result=result)


@shared_task(
    bind=True,
    base=QRCodeTask,
    name=qr_codes.TASK_NAME,
    soft_time_limit=_settings.default_soft_time_limit_s,
    time_limit=_settings.default_time_limit_s,
)
def generate_qr_code(self: QRCodeTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)
