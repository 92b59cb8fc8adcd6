"""Compiling the MindAR marker of a portrait or an AR content image, and recording the result.

A compile writes its `.mind` under a key of its own job, then switches the record to it in the
transaction that settles the job. The marker served is deleted only once its successor is in place;
a compile that was superseded meanwhile (a newer compile was requested) deletes its own output and
leaves the record alone.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import ARContent, Job, JobStatus, MarkerStatus, Portrait, utcnow
from arv.jobs import store
from arv.jobs.kinds import InFlightQuota, JobKind, JobOutcome, register
from arv.jobs.queues import Queue
from arv.services import quotas
from arv.services.notify.outbox import notify_marker_failed
from arv.storage import ObjectNotFound, Storage, get_storage

MarkerSubject = type[Portrait] | type[ARContent]

MIND_CONTENT_TYPE = "application/octet-stream"


class MarkerInputError(Exception):
    """The image cannot become a marker; the message says why in words a customer can act on."""


def get_subject(session: Session, model: MarkerSubject, subject_id: int) -> Portrait | ARContent | None:
    # session.get() of a union of classes is typed as their common base; the row is one of the two.
    return cast("Portrait | ARContent | None", session.get(model, subject_id))


def marker_key_for(job: Job) -> str:
    """Each compile writes its own key (job ids are random), so a re-compile never overwrites the
    marker being served, and a retried compile of the same job overwrites only its own output."""
    return marker_key(job.id)


def marker_key(job_id: str) -> str:
    """The key the compile job `job_id` writes its `.mind` under."""
    return f"markers/{job_id}.mind"


def compile_marker(
    session: Session,
    storage: Storage,
    model: MarkerSubject,
    job: Job,
    *,
    max_pixels: int,
    trained: bool = True,
) -> JobOutcome:
    """Compile the subject's image into storage; the outcome's `record` points the subject at it.

    Raises MarkerInputError for an image that cannot become a marker; storage errors propagate for a
    retry.
    """
    subject_id = job.args["id"]
    started = session.execute(
        update(model)
        .where(
            model.id == subject_id,
            model.marker_task_id == job.id,
            model.marker_status.in_([MarkerStatus.PENDING, MarkerStatus.PROCESSING]),
        )
        .values(marker_status=MarkerStatus.PROCESSING, updated_at=utcnow())
        .returning(model.image_key)
    ).one_or_none()
    session.commit()
    if started is None:
        # Deleted, already compiled, or a newer compile was requested since: nothing left to do.
        return JobOutcome({"superseded": True})

    try:
        image = storage.get(started.image_key)
    except ObjectNotFound as exc:
        raise MarkerInputError("the uploaded image is missing from storage; upload it again") from exc
    # Imported here: the API process, which only queues compiles, never loads numpy and OpenCV.
    from arv.mindar import MindARInputError, compile_targets

    try:
        compiled = compile_targets([image], max_pixels=max_pixels, exact=not trained)
    except MindARInputError as exc:
        raise MarkerInputError(str(exc)) from exc

    report = compiled.reports[0].to_dict()
    key = marker_key_for(job)
    storage.put(key, compiled.data, MIND_CONTENT_TYPE)
    result: dict[str, Any] = {
        "marker_key": key,
        "verdict": report.get("verdict"),
        "findability": report.get("findability"),
        "size_bytes": len(compiled.data),
    }

    def record(session: Session) -> Any:
        current = session.execute(
            select(model.marker_key, model.marker_task_id).where(model.id == subject_id).with_for_update()
        ).one_or_none()
        if current is None or current.marker_task_id != job.id:
            result["superseded"] = True
            return lambda: storage.delete(key)
        session.execute(
            update(model)
            .where(model.id == subject_id)
            .values(
                marker_status=MarkerStatus.READY,
                marker_key=key,
                marker_error=None,
                marker_metadata=report,
                updated_at=utcnow(),
            )
        )
        replaced = current.marker_key
        return (lambda: storage.delete(replaced)) if replaced and replaced != key else None

    return JobOutcome(result, record=record)


def mark_failed(session: Session, model: MarkerSubject, job_ids: list[str], reason: str) -> int:
    """Record a final failure on the subjects these jobs compile; a marker already served stays."""
    result = session.execute(
        update(model)
        .where(
            model.marker_task_id.in_(job_ids),
            model.marker_status.in_([MarkerStatus.PENDING, MarkerStatus.PROCESSING]),
        )
        .values(marker_status=MarkerStatus.FAILED, marker_error=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


def request_compile(session: Session, subject: Portrait | ARContent) -> str:
    """Queue a (re)compile of `subject` in the caller's transaction; the current marker stays served.

    Returns the job id.
    """
    kind = COMPILE_PORTRAIT_MARKER if isinstance(subject, Portrait) else COMPILE_CONTENT_MARKER
    job_id = store.enqueue(session, kind, {"id": subject.id}, company_id=subject.company_id)
    subject.marker_task_id = job_id
    subject.marker_status = MarkerStatus.PENDING
    subject.marker_error = None
    return job_id


def request_recompile(session: Session, subject: Portrait | ARContent) -> str:
    """Compile `subject` again, in the caller's transaction; returns the job id.

    A compile of it still waiting in the queue will do: its id is the answer, and nothing new is
    queued (a click repeated while the queue is busy costs nothing). Otherwise the company's compile
    quota is checked (`quotas.QuotaExceeded`) and a compile is queued; one already running goes on,
    and is superseded by the new one.
    """
    if subject.marker_task_id is not None:
        waiting = session.scalar(
            select(Job.id).where(Job.id == subject.marker_task_id, Job.status == JobStatus.QUEUED)
        )
        if waiting is not None:
            return waiting
    kind = COMPILE_PORTRAIT_MARKER if isinstance(subject, Portrait) else COMPILE_CONTENT_MARKER
    quotas.admit_jobs(session, subject.company_id, get_settings(), [kind])
    return request_compile(session, subject)


def _compile_kind(name: str, model: MarkerSubject) -> JobKind:
    def run(session: Session, job: Job) -> JobOutcome:
        settings = get_settings()
        return compile_marker(
            session,
            get_storage(),
            model,
            job,
            max_pixels=settings.max_image_pixels,
            trained=settings.marker_training,
        )

    def failed(session: Session, job: Job, reason: str) -> None:
        if mark_failed(session, model, [job.id], reason):
            subject = get_subject(session, model, job.args["id"])
            if subject is not None:
                notify_marker_failed(session, subject, job_id=job.id, reason=reason)

    return register(
        JobKind(
            name=name,
            queue=Queue.MARKERS,
            run=run,
            permanent_errors=(MarkerInputError,),
            on_failure=failed,
            quota=InFlightQuota.COMPILES,
        )
    )


COMPILE_PORTRAIT_MARKER = _compile_kind("generate_mind_marker_task", Portrait)
COMPILE_CONTENT_MARKER = _compile_kind("generate_ar_content_marker_task", ARContent)
