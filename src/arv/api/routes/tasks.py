"""Tasks: the state of a background job, read from the database that is its source of truth."""

from fastapi import APIRouter, HTTPException, status

from arv.api.deps import CurrentPrincipal, SessionDep
from arv.api.schemas import TaskIdPath, TaskOut
from arv.db.models import Job, JobStatus

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

# Job states in Celery's words, which clients of task queues already know.
CELERY_STATES: dict[str, str] = {
    JobStatus.QUEUED: "PENDING",
    JobStatus.RUNNING: "STARTED",
    JobStatus.SUCCEEDED: "SUCCESS",
    JobStatus.FAILED: "FAILURE",
}


@router.get("/{task_id}", response_model=TaskOut)
def read_task(task_id: TaskIdPath, session: SessionDep, principal: CurrentPrincipal) -> TaskOut:
    job = session.get(Job, task_id)
    visible = job is not None and (
        principal.is_admin or (job.company_id is not None and job.company_id == principal.company_id)
    )
    if job is None or not visible:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no task {task_id}")
    state = CELERY_STATES[job.status]
    if job.status == JobStatus.QUEUED and job.attempts > 0:
        state = "RETRY"
    return TaskOut(
        task_id=job.id,
        state=state,
        result=job.result,
        error=job.error if job.status in (JobStatus.FAILED, JobStatus.QUEUED) else None,
        attempts=job.attempts,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )
