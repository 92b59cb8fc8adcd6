"""Tasks the pipeline benchmark loads into its workers: a bare Celery no-op and a no-op job kind."""

from __future__ import annotations

from celery import current_app, shared_task

from arv.config import get_settings
from arv.jobs.kinds import JobKind, JobOutcome, register
from arv.jobs.queues import Queue
from arv.tasks.job_tasks import register_job_task


@shared_task(name="bench_bare_noop")
def bench_bare_noop() -> None:
    """Celery alone: deliver, run nothing, store the result."""


# ARV's job path with no work: claim the row (with its heartbeat held), settle it, commit.
BENCH_NOOP = register(JobKind(name="bench_job_noop", queue=Queue.DEFAULT, run=lambda _s, _j: JobOutcome()))
# Loaded with `-I` after the worker's app was built from the registered kinds: its task is added here.
register_job_task(current_app, BENCH_NOOP, get_settings())
