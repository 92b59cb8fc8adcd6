"""Deleting what a company owns: its rows, its jobs and every storage object of it, for good.

One deletion is one transaction of the request that asks for it:

1. Which rows go: the root's (an AR content, a video, a portrait, a project, a company) and, following
   every foreign key that is not `ON DELETE SET NULL`, all rows that hang from them (a project's
   contents, their videos, rotation schedules, view counts, notifications and their deliveries; a
   company's keys, upload counts, portraits, projects, jobs). The rows are deleted here, children
   before parents, whether or not the database would cascade: `ON DELETE CASCADE` is in the schema on
   both backends (SQLite enforces it only with `PRAGMA foreign_keys=ON`, which every connection of
   `arv.db.session` sets), but nothing here depends on it. A `SET NULL` key pointing into the deleted
   rows (a content's `active_video_id`) is set null explicitly.
2. The storage keys of those rows are read, each table's rows locked first (on PostgreSQL), from every
   column in `arv.services.orphans.STORAGE_KEY_COLUMNS`, so a key column added there is erased too;
   with them the keys the rows' jobs write (`markers/<job>.mind`, thumbnails, posters, QR codes),
   which a job that stopped between writing and recording leaves unreferenced.
3. The jobs of those rows (their compiles, previews, QR codes, deliveries, and a deleted company's every
   job) are deleted, except a job running now: that one is left to end (it finds its subject gone,
   records nothing and deletes what it wrote) and is deleted afterwards.
4. `ERASE_OBJECTS` jobs are queued with the keys, in the same transaction: the objects are erased
   within seconds of the commit by a default-queue worker, and a crash before they are means a retry,
   never a leak. The orphan collection (arv.services.orphans) stays the backstop.
5. A deleted content's public id is kept in `deleted_contents`, so its page answers 410, not 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import (
    Column,
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    false,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from arv.db.dialect import upsert
from arv.db.models import (
    ARContent,
    Base,
    Company,
    DeletedContent,
    Job,
    JobStatus,
    Notification,
    NotificationDelivery,
    NotificationType,
    Portrait,
    Project,
    UTCDateTime,
    Video,
    VideoRotationSchedule,
    utcnow,
)
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, TryLater, register
from arv.jobs.queues import Queue
from arv.services import markers, previews, qr_codes, transcode
from arv.services.notify import delivery
from arv.services.orphans import REFERENCED_KEYS, STORAGE_KEY_COLUMNS
from arv.storage import Storage, get_storage

log = structlog.get_logger(__name__)

# Keys per erase job: a job's arguments stay small, and a retry repeats little.
ERASE_BATCH = 500
# How often an erase job waiting for a deleted row's running job to end looks again.
WAIT_FOR_RUNNING_S = 5.0

_jobs: Table = Job.__table__  # type: ignore[assignment]


def _table(model: type[Base]) -> Table:
    return model.__table__  # type: ignore[return-value]


@dataclass(frozen=True)
class SubjectJobs:
    """Jobs of `kind` work on the row of `table` whose id is `args[id_arg]` (and whose other `args`
    equal `match`); `output_keys(job_id)` are the storage keys such a job writes, if fixed by it."""

    kind: JobKind
    table: Table
    id_arg: str
    match: tuple[tuple[str, str], ...] = ()
    output_keys: Callable[[str], tuple[str, ...]] | None = None


def _keys(*makers: Callable[[str], str]) -> Callable[[str], tuple[str, ...]]:
    """The keys a job writes, from the functions that name each of them by the job's id."""
    return lambda job_id: tuple(make(job_id) for make in makers)


SUBJECT_JOBS: tuple[SubjectJobs, ...] = (
    SubjectJobs(
        markers.COMPILE_PORTRAIT_MARKER, _table(Portrait), "id", output_keys=_keys(markers.marker_key)
    ),
    SubjectJobs(
        markers.COMPILE_CONTENT_MARKER, _table(ARContent), "id", output_keys=_keys(markers.marker_key)
    ),
    SubjectJobs(
        previews.THUMBNAIL,
        _table(Portrait),
        "id",
        (("kind", "portrait"),),
        output_keys=_keys(previews.thumbnail_key),
    ),
    SubjectJobs(
        previews.THUMBNAIL,
        _table(ARContent),
        "id",
        (("kind", "ar_content"),),
        output_keys=_keys(previews.thumbnail_key),
    ),
    SubjectJobs(previews.POSTER, _table(Video), "video_id", output_keys=_keys(previews.poster_key)),
    SubjectJobs(
        transcode.TRANSCODE,
        _table(Video),
        "video_id",
        output_keys=_keys(transcode.rendition_key, transcode.small_rendition_key),
    ),
    SubjectJobs(qr_codes.QR_CODE, _table(ARContent), "id"),
    SubjectJobs(delivery.DELIVER, _table(NotificationDelivery), "delivery_id"),
)


@dataclass
class Deleted:
    """What one deletion removed: rows per table, jobs deleted, jobs left running, keys queued for
    erasure."""

    rows: dict[str, int] = field(default_factory=dict)
    jobs_deleted: int = 0
    jobs_running: int = 0
    keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "jobs_deleted": self.jobs_deleted,
            "jobs_running": self.jobs_running,
            "keys": self.keys,
        }


# ---- what goes ----------------------------------------------------------------------------------


def _follows(fk_ondelete: str | None) -> bool:
    """Whether a row hangs from the row its foreign key names: every key but SET NULL / SET DEFAULT."""
    return (fk_ondelete or "").upper() not in ("SET NULL", "SET DEFAULT")


def deletion_scope(root: Table, where: ColumnElement[bool]) -> dict[Table, ColumnElement[bool]]:
    """Per table, the condition on its own columns that selects the rows going with `root`'s rows
    selected by `where`, parents before children (the jobs table is left out: see `_delete_jobs`)."""
    scope: dict[Table, ColumnElement[bool]] = {root: where}
    # sorted_tables puts every table after the tables its foreign keys name (the one cycle, a
    # content's active video, is a SET NULL key declared use_alter and not followed).
    for table in Base.metadata.sorted_tables:
        if table is root or table is _jobs:
            continue
        conditions = [
            fk.parent.in_(select(fk.column).where(scope[fk.column.table]))
            for fk in table.foreign_keys
            if _follows(fk.ondelete) and fk.column.table in scope
        ]
        if conditions:
            scope[table] = or_(*conditions)
    return scope


def _key_columns(table: Table) -> list[Column[Any]]:
    columns = [attribute.property.columns[0] for attribute in STORAGE_KEY_COLUMNS]
    return [column for column in columns if column.table is table]


def _keys_of(session: Session, table: Table, where: ColumnElement[bool]) -> set[str]:
    """The storage keys the selected rows of `table` hold, the rows locked against a concurrent
    writer (a compile recording its marker waits, then finds the row gone)."""
    columns = _key_columns(table)
    if not columns:
        return set()
    keys: set[str] = set()
    for row in session.execute(select(*columns).where(where).with_for_update()):
        keys.update(value for value in row if value)
    return keys


def _chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _job_condition(scope: dict[Table, ColumnElement[bool]]) -> ColumnElement[bool]:
    """The jobs that work on a row in `scope`, and every job of a company in it."""
    conditions: list[ColumnElement[bool]] = []
    for subject in SUBJECT_JOBS:
        if subject.table not in scope:
            continue
        ids = select(subject.table.c.id).where(scope[subject.table])
        is_kind = _jobs.c.kind == subject.kind.name
        # The CASE reads the argument as an integer only in this kind's jobs, whatever order the
        # database evaluates the conditions in (another kind's "id" need not be a number).
        subject_id = case((is_kind, _jobs.c.args[subject.id_arg].as_integer()), else_=None)
        matches = [_jobs.c.args[name].as_string() == value for name, value in subject.match]
        conditions.append(and_(is_kind, subject_id.in_(ids), *matches))
    companies = _table(Company)
    if companies in scope:
        conditions.append(_jobs.c.company_id.in_(select(companies.c.id).where(scope[companies])))
    return or_(*conditions) if conditions else false()


def _delete_jobs(session: Session, scope: dict[Table, ColumnElement[bool]], deleted: Deleted) -> _Jobs:
    """Delete the jobs of the rows in scope that are not running now; the running ones are left to end
    (each finds its subject gone and deletes what it wrote), and deleted by an erase job afterwards."""
    found = session.execute(select(_jobs.c.id, _jobs.c.kind).where(_job_condition(scope))).all()
    output_keys: dict[str, Callable[[str], tuple[str, ...]]] = {
        subject.kind.name: subject.output_keys for subject in SUBJECT_JOBS if subject.output_keys
    }
    ids = [job_id for job_id, _ in found]
    gone: set[str] = set()
    for chunk in _chunks(ids, 1000):
        gone.update(
            session.scalars(
                delete(_jobs)
                .where(_jobs.c.id.in_(chunk), _jobs.c.status != JobStatus.RUNNING)
                .returning(_jobs.c.id)
            )
        )
    jobs = _Jobs(running=[job_id for job_id in ids if job_id not in gone])
    for job_id, kind in found:
        if kind in output_keys:
            (jobs.keys if job_id in gone else jobs.running_keys).update(output_keys[kind](job_id))
    deleted.jobs_deleted += len(gone)
    deleted.jobs_running += len(jobs.running)
    return jobs


@dataclass
class _Jobs:
    """The jobs of a deletion still running, and the keys the deleted and the running ones write."""

    running: list[str]
    keys: set[str] = field(default_factory=set)
    running_keys: set[str] = field(default_factory=set)


def _detach(session: Session, job_ids: Sequence[str]) -> None:
    """Take running jobs out of their company, so deleting the company does not delete them under a
    worker (whose settlement would then fail, leaving what it wrote)."""
    for chunk in _chunks(job_ids, 1000):
        session.execute(update(_jobs).where(_jobs.c.id.in_(chunk)).values(company_id=None))


def _delete_rows(session: Session, root: Table, where: ColumnElement[bool]) -> Deleted:
    """Delete `root`'s rows selected by `where` with everything of them, and queue the erasure of
    their storage objects; in the caller's transaction, which the caller commits."""
    deleted = Deleted()
    scope = deletion_scope(root, where)
    jobs = _delete_jobs(session, scope, deleted)
    keys = set(jobs.keys)
    contents = _table(ARContent)
    if contents in scope:
        for unique_id in session.scalars(select(contents.c.unique_id).where(scope[contents])):
            keys.update(qr_codes.qr_keys_of(unique_id))
        # A concurrent deletion of the same content may have written its id already.
        session.execute(
            upsert(session, _table(DeletedContent))
            .from_select(
                ["unique_id", "deleted_at"],
                select(contents.c.unique_id, literal(utcnow(), UTCDateTime())).where(scope[contents]),
            )
            .on_conflict_do_nothing(index_elements=["unique_id"])
        )
    ordered = [table for table in Base.metadata.sorted_tables if table in scope]
    # Children first, so each table's condition reads parent rows still there; the root comes last.
    # Locks are taken in the order the rotation pass and the job settlements take theirs (a schedule
    # before its content, a content before its job), so none of them deadlocks with a deletion.
    for table in reversed(ordered):
        if table is root and _table(Company) in scope:
            _detach(session, jobs.running)
        keys.update(_keys_of(session, table, scope[table]))
        _set_null_references(session, table, scope)
        result = session.execute(delete(table).where(scope[table]))
        deleted.rows[table.name] = result.rowcount  # type: ignore[attr-defined]
    deleted.keys = len(keys)
    queue_erasure(session, sorted(keys), jobs.running, sorted(jobs.running_keys))
    return deleted


def _set_null_references(session: Session, parent: Table, scope: dict[Table, ColumnElement[bool]]) -> None:
    """Set null the SET NULL foreign keys that point at rows of `parent` about to be deleted."""
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table is parent and not _follows(fk.ondelete):
                session.execute(
                    update(table)
                    .where(fk.parent.in_(select(fk.column).where(scope[parent])))
                    .values({fk.parent.name: None})
                )


def queue_erasure(
    session: Session, keys: Sequence[str], running_jobs: Sequence[str] = (), running_keys: Sequence[str] = ()
) -> list[str]:
    """Queue `ERASE_OBJECTS` jobs for `keys`, and one that waits for `running_jobs` to end, then deletes
    them and erases `running_keys` (what they write, should one have stopped before deleting it). No
    company on them: they outlive a company's deletion."""
    batches: list[tuple[dict[str, Any], int | None]] = [
        ({"keys": list(chunk)}, None) for chunk in _chunks(list(keys), ERASE_BATCH)
    ]
    if running_jobs:
        batches.append(({"keys": list(running_keys), "after_jobs": list(running_jobs)}, None))
    return store.enqueue_many(session, ERASE_OBJECTS, batches)


# ---- the deletions ------------------------------------------------------------------------------


def _log(what: str, record_id: int, deleted: Deleted) -> Deleted:
    log.info("deletion.done", what=what, id=record_id, **deleted.to_dict())
    return deleted


def delete_ar_content(session: Session, content: ARContent) -> Deleted:
    """Delete an AR content with its videos, schedule, views, notifications, jobs and objects."""
    contents = _table(ARContent)
    return _log("ar_content", content.id, _delete_rows(session, contents, contents.c.id == content.id))


def delete_portrait(session: Session, portrait: Portrait) -> Deleted:
    """Delete a portrait with its jobs and objects, and the notifications about it (which name it in
    their payload, not by a foreign key)."""
    notifications = _table(Notification)
    named = case(
        (
            notifications.c.notification_type == NotificationType.MARKER_FAILED,
            notifications.c.payload["portrait_id"].as_integer(),
        ),
        else_=None,
    )
    about = _delete_rows(
        session,
        notifications,
        and_(
            notifications.c.company_id == portrait.company_id,
            notifications.c.ar_content_id.is_(None),
            named == portrait.id,
        ),
    )
    portraits = _table(Portrait)
    deleted = _delete_rows(session, portraits, portraits.c.id == portrait.id)
    for table, count in about.rows.items():
        deleted.rows[table] = deleted.rows.get(table, 0) + count
    deleted.jobs_deleted += about.jobs_deleted
    deleted.jobs_running += about.jobs_running
    return _log("portrait", portrait.id, deleted)


def delete_project(session: Session, project: Project) -> Deleted:
    """Delete a project with every AR content in it."""
    projects = _table(Project)
    return _log("project", project.id, _delete_rows(session, projects, projects.c.id == project.id))


def delete_company(session: Session, company: Company) -> Deleted:
    """Delete a company with everything it has: keys, projects, portraits, notifications, jobs."""
    companies = _table(Company)
    return _log("company", company.id, _delete_rows(session, companies, companies.c.id == company.id))


def delete_video(session: Session, content: ARContent, video: Video) -> Deleted:
    """Delete one video of `content`. If it was playing, the content switches to the next video of its
    rotation, or else to its earliest other video, or to none; a rotation drops it from its sequence
    (and ends when nothing is left)."""
    # The schedule before the content, in the order the rotation pass locks them.
    schedule = session.scalars(
        select(VideoRotationSchedule)
        .where(VideoRotationSchedule.ar_content_id == content.id)
        .with_for_update()
    ).one_or_none()
    session.execute(select(ARContent.id).where(ARContent.id == content.id).with_for_update())
    session.refresh(content)
    replacement: int | None = None
    if schedule is not None:
        sequence, index = without_video(
            [int(v) for v in schedule.video_sequence], schedule.current_index, video.id
        )
        if sequence:
            schedule.video_sequence = sequence
            schedule.current_index = index
            replacement = sequence[index]
        else:
            session.delete(schedule)
        session.flush()
    playing = content.active_video_id
    videos = _table(Video)
    deleted = _delete_rows(session, videos, videos.c.id == video.id)
    if playing == video.id:
        if replacement is None:
            replacement = session.scalar(
                select(Video.id).where(Video.ar_content_id == content.id).order_by(Video.id).limit(1)
            )
        session.execute(
            update(ARContent)
            .where(ARContent.id == content.id)
            .values(active_video_id=replacement, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    session.expire(content)
    return _log("video", video.id, deleted)


def without_video(sequence: list[int], current_index: int, video_id: int) -> tuple[list[int], int]:
    """A rotation's sequence without `video_id`, and the index that keeps it where it was: on the same
    video if that stays, else on the one that followed it (wrapping to the start)."""
    kept = [v for v in sequence if v != video_id]
    if not kept:
        return [], 0
    current = current_index % len(sequence) if sequence else 0
    before = sum(1 for v in sequence[:current] if v != video_id)
    return kept, before % len(kept)


# ---- erasing ------------------------------------------------------------------------------------


def erase_objects(session: Session, storage: Storage, job: Job) -> JobOutcome:
    """Erase the objects at the job's `keys` that no row references (a key never is shared, but an
    object a row holds is never erased); first, when the job names `after_jobs`, wait until none of
    them runs and delete them."""
    waiting: list[str] = list(job.args.get("after_jobs", []))
    jobs_deleted = 0
    if waiting:
        running = session.scalar(
            select(_jobs.c.id).where(_jobs.c.id.in_(waiting), _jobs.c.status == JobStatus.RUNNING).limit(1)
        )
        if running is not None:
            session.commit()
            raise TryLater(
                "a job of the deleted records is still running",
                delay_s=WAIT_FOR_RUNNING_S,
                counts_as_attempt=False,
            )
        result = session.execute(delete(_jobs).where(_jobs.c.id.in_(waiting)))
        jobs_deleted = result.rowcount  # type: ignore[attr-defined]
        # Committed before the objects go: a retry of this job finds the rows gone and goes on.
        session.commit()
    keys: list[str] = list(job.args.get("keys", []))
    referenced = set(session.scalars(REFERENCED_KEYS, {"keys": keys})) if keys else set()
    session.commit()
    erased = 0
    for key in keys:
        if key not in referenced:
            storage.delete(key)  # a missing key is no error; a storage failure retries the job
            erased += 1
    return JobOutcome({"erased": erased, "kept_referenced": len(referenced), "jobs_deleted": jobs_deleted})


ERASE_OBJECTS = register(
    JobKind(
        name="erase_storage_objects",
        queue=Queue.DEFAULT,
        run=lambda session, job: erase_objects(session, get_storage(), job),
    )
)
