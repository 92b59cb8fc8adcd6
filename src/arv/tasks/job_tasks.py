"""Celery's tasks for the job kinds: one thin task per registered kind, derived, never written by hand."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from arv.config import Settings
from arv.jobs.kinds import JobKind
from arv.jobs.runner import RunAgain, run_job


def register_job_task(app: Celery, kind: JobKind, settings: Settings) -> Task:
    """The task that runs `kind`'s jobs: its only argument is the job id; a job due again later goes
    back through Celery's own retry, with the countdown the runner chose."""
    limits = kind.limits(settings)

    def run(self: Task, job_id: str) -> dict[str, Any]:
        outcome = run_job(kind, job_id, time_limit_error=SoftTimeLimitExceeded)
        if isinstance(outcome, RunAgain):
            raise self.retry(countdown=outcome.delay_s, max_retries=None)
        return outcome

    run.__name__ = run.__qualname__ = kind.name
    run.__doc__ = f"Runs one attempt of a {kind.name!r} job (arv.jobs.kinds)."
    return app.task(  # type: ignore[no-any-return]
        run,
        bind=True,
        name=kind.name,
        # This app only: a new app (a test, a reset) derives its own from the kinds.
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        soft_time_limit=limits.soft_s,
        time_limit=limits.hard_s,
    )
