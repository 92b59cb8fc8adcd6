"""Running a job in the test's own process, the way a worker's task does, without a broker."""

from __future__ import annotations

from typing import Any

from arv.db.models import Job
from arv.db.session import session_scope
from arv.jobs.kinds import kind_named
from arv.jobs.runner import RunAgain, run_job


def run_job_here(job_id: str) -> dict[str, Any] | RunAgain:
    """One attempt of job `job_id`, run by its kind's runner in this process."""
    import arv.tasks.app  # noqa: F401 - registers every feature's job kinds

    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None, f"there is no job {job_id}"
        kind = kind_named(job.kind)
    assert kind is not None, f"no job kind is named {job.kind!r}"
    return run_job(kind, job_id)
