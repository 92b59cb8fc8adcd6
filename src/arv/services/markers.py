"""Compiling the MindAR marker of a portrait or an AR content image, and recording the result."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import update
from sqlalchemy.orm import Session

from arv.db.models import ARContent, Job, MarkerStatus, Portrait, utcnow
from arv.services.jobs import enqueue
from arv.storage import ObjectNotFound, Storage

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
    return f"markers/{job.id}.mind"


def compile_marker(
    session: Session, storage: Storage, model: MarkerSubject, job: Job, *, max_pixels: int
) -> tuple[dict[str, Any], str | None]:
    """Compile the subject's image and point it at the new marker.

    Returns the job result and the key of the marker it replaced (to delete once committed). Raises
    MarkerInputError for an image that cannot become a marker; storage errors propagate for a retry.
    """
    subject = get_subject(session, model, job.args["id"])
    if subject is None or subject.marker_task_id != job.id:
        # Deleted, or a newer compile was requested since: this one has nothing left to do.
        return {"superseded": True}, None
    subject.marker_status = MarkerStatus.PROCESSING
    session.commit()

    try:
        image = storage.get(subject.image_key)
    except ObjectNotFound as exc:
        raise MarkerInputError("the uploaded image is missing from storage; upload it again") from exc
    # Imported here: the API process, which only queues compiles, never loads numpy and OpenCV.
    from arv.mindar import MindARInputError, compile_targets

    try:
        compiled = compile_targets([image], max_pixels=max_pixels)
    except MindARInputError as exc:
        raise MarkerInputError(str(exc)) from exc

    report = compiled.reports[0].to_dict()
    key = marker_key_for(job)
    storage.put(key, compiled.data, MIND_CONTENT_TYPE)
    previous = subject.marker_key
    session.execute(
        update(model)
        .where(model.id == subject.id, model.marker_task_id == job.id)
        .values(
            marker_status=MarkerStatus.READY,
            marker_key=key,
            marker_error=None,
            marker_metadata=report,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    replaced = previous if previous and previous != key else None
    return {"marker_key": key, "verdict": report.get("verdict"), "size_bytes": len(compiled.data)}, replaced


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


def request_compile(session: Session, subject: Portrait | ARContent, *, task_name: str, queue: str) -> Job:
    """Queue a (re)compile of `subject` in the caller's transaction; the current marker stays served."""
    job = enqueue(
        session, task_name=task_name, queue=queue, args={"id": subject.id}, company_id=subject.company_id
    )
    subject.marker_task_id = job.id
    subject.marker_status = MarkerStatus.PENDING
    subject.marker_error = None
    return job
