"""Tasks the pipeline benchmark loads into its workers: a bare Celery no-op and a no-op job."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from arv.db.models import Job
from arv.tasks.jobs import JobOutcome, JobTask


@shared_task(name="bench_bare_noop")
def bench_bare_noop() -> None:
    """Celery alone: deliver, run nothing, store the result."""


class NoopJobTask(JobTask):
    """ARV's job path with no work: claim the row, settle it, commit."""

    def execute(self, session: Session, job: Job) -> JobOutcome:
        return JobOutcome(result={})


@shared_task(bind=True, base=NoopJobTask, name="bench_job_noop")
def bench_job_noop(self: NoopJobTask, job_id: str) -> dict[str, Any]:
    return self.run_job(job_id)
