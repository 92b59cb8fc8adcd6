"""Per-company quotas: uploads per UTC day, compiles and transcodes in flight, bytes stored.

Each limit is the setting (`ARV_QUOTA_UPLOADS_PER_DAY` and so on) unless the company has its own
value (`Company.quota_*`, null meaning the setting); 0 is unlimited. A check that fails raises
`QuotaExceeded`, which the API answers with 429 and `Retry-After`.

An upload is checked twice. First before it writes anything to storage, so that a refusal leaves
nothing behind. Then once more just before its commit, its own rows flushed, holding a lock on the
company's row: concurrent uploads of one company take turns there for that moment only (not while
they write to storage), so each one counts what the others committed, and two uploads at a limit
never both pass. The day's counter is one upsert that increments only while below the limit. Queuing
a job outside an upload (a re-compile) takes the same lock for its check.

In-flight quotas count the company's queued and running jobs of every registered kind that declares
the quota (`JobKind.quota`). Stored bytes are the uploaded originals (portraits, AR content images,
videos); derived files (markers, thumbnails, posters, QR codes) are small beside them and not counted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arv.config import Settings
from arv.db.dialect import upsert
from arv.db.models import ARContent, Company, Job, JobStatus, Portrait, UploadCount, Video
from arv.jobs.kinds import InFlightQuota, JobKind, registered_kinds

UPLOADS_PER_DAY = "uploads_per_day"
STORED_BYTES = "stored_bytes"
# Every quota, by the name its setting (`quota_<name>`) and its company override share.
QUOTAS: tuple[str, ...] = (UPLOADS_PER_DAY, InFlightQuota.COMPILES, InFlightQuota.TRANSCODES, STORED_BYTES)

# Jobs finish in seconds to minutes: a client refused for jobs in flight may try again soon.
IN_FLIGHT_RETRY_AFTER_S = 10
# Storage frees up only when the studio deletes something: no point in trying again soon.
STORED_BYTES_RETRY_AFTER_S = 3600

_IN_FLIGHT = (JobStatus.QUEUED, JobStatus.RUNNING)
_IN_FLIGHT_WORDS = {
    InFlightQuota.COMPILES: "marker compiles",
    InFlightQuota.TRANSCODES: "videos being transcoded",
}


class QuotaExceeded(Exception):
    """A company is at one of its quotas; the message says which, its limit, and what to do.

    Parameters:
        quota: the quota's name (one of `QUOTAS`).
        limit: the company's limit for it.
        retry_after_s: seconds after which trying again may succeed.
    """

    def __init__(self, quota: str, limit: int, retry_after_s: int, detail: str) -> None:
        super().__init__(detail)
        self.quota = quota
        self.limit = limit
        self.retry_after_s = retry_after_s


def limit_of(company: Company, settings: Settings, quota: str) -> int:
    """The company's limit for `quota`: its own value when set, else the setting; 0 is unlimited."""
    override: int | None = getattr(company, f"quota_{quota}")
    return override if override is not None else int(getattr(settings, f"quota_{quota}"))


# ---- current use --------------------------------------------------------------------------------


def jobs_in_flight(session: Session, company_id: int, quota: InFlightQuota) -> int:
    """Queued and running jobs of the company whose kind counts under `quota`."""
    kinds = [kind.name for kind in registered_kinds() if kind.quota == quota]
    count = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.company_id == company_id, Job.status.in_(_IN_FLIGHT), Job.kind.in_(kinds))
    )
    return int(count or 0)


def stored_bytes(session: Session, company_id: int) -> int:
    """Bytes of the company's uploaded images and videos."""
    portraits = select(func.coalesce(func.sum(Portrait.image_size_bytes), 0)).where(
        Portrait.company_id == company_id
    )
    images = select(func.coalesce(func.sum(ARContent.image_size_bytes), 0)).where(
        ARContent.company_id == company_id
    )
    videos = (
        select(func.coalesce(func.sum(Video.size_bytes), 0))
        .join(ARContent, Video.ar_content_id == ARContent.id)
        .where(ARContent.company_id == company_id)
    )
    total = session.scalar(
        select(portraits.scalar_subquery() + images.scalar_subquery() + videos.scalar_subquery())
    )
    return int(total or 0)


def uploads_on(session: Session, company_id: int, day: date) -> int:
    """Uploads the company made on the UTC `day`."""
    count = session.scalar(
        select(UploadCount.count).where(UploadCount.company_id == company_id, UploadCount.day == day)
    )
    return int(count or 0)


@dataclass(frozen=True)
class QuotaUsage:
    """Where a company stands on one quota; `limit` is None when it is unlimited."""

    quota: str
    limit: int | None
    used: int
    overridden: bool


def usage(session: Session, company: Company, settings: Settings) -> list[QuotaUsage]:
    """Each quota's limit for the company and its current use."""
    used = {
        UPLOADS_PER_DAY: uploads_on(session, company.id, _today()),
        InFlightQuota.COMPILES: jobs_in_flight(session, company.id, InFlightQuota.COMPILES),
        InFlightQuota.TRANSCODES: jobs_in_flight(session, company.id, InFlightQuota.TRANSCODES),
        STORED_BYTES: stored_bytes(session, company.id),
    }
    return [
        QuotaUsage(
            quota=str(quota),
            limit=limit_of(company, settings, quota) or None,
            used=used[quota],
            overridden=getattr(company, f"quota_{quota}") is not None,
        )
        for quota in QUOTAS
    ]


# ---- checks -------------------------------------------------------------------------------------


def _today() -> date:
    return datetime.now(UTC).date()


def seconds_until_next_utc_midnight(now: datetime | None = None) -> int:
    """Whole seconds (at least 1) until the next UTC day begins, when the day's upload quota renews."""
    now = now or datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


def _uploads_refused(limit: int) -> QuotaExceeded:
    retry_after = seconds_until_next_utc_midnight()
    hours, minutes = divmod(math.ceil(retry_after / 60), 60)
    return QuotaExceeded(
        UPLOADS_PER_DAY,
        limit,
        retry_after,
        f"the company has used its quota of {limit} uploads today (UTC days); it renews at midnight UTC, "
        f"in {hours} h {minutes} min. Upload again then, or ask the operator to raise the quota",
    )


def check_uploads_per_day(session: Session, company: Company, settings: Settings) -> None:
    """Refuse one more upload today when the day's count is at the limit (a read: no lock)."""
    limit = limit_of(company, settings, UPLOADS_PER_DAY)
    if limit and uploads_on(session, company.id, _today()) >= limit:
        raise _uploads_refused(limit)


def count_upload(session: Session, company: Company, settings: Settings) -> int:
    """Add the upload to the day's count in the caller's transaction; returns the new count.

    One upsert, which increments only while the count is below the limit: on PostgreSQL a concurrent
    upload's increment waits for this transaction and then sees its count, so two uploads at the
    limit cannot both be counted. Raises QuotaExceeded when the limit is reached.
    """
    limit = limit_of(company, settings, UPLOADS_PER_DAY)
    statement = upsert(session, UploadCount).values(company_id=company.id, day=_today(), count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[UploadCount.company_id, UploadCount.day],
        set_={"count": UploadCount.count + 1},
        where=(UploadCount.count < limit) if limit else None,
    ).returning(UploadCount.count)
    counted = session.execute(statement).scalar_one_or_none()
    if counted is None:
        raise _uploads_refused(limit)
    return int(counted)


def check_in_flight(
    session: Session,
    company: Company,
    settings: Settings,
    kinds: Sequence[JobKind],
    *,
    already_queued: bool = False,
) -> None:
    """Refuse when a job of each of `kinds` would pass an in-flight quota; `already_queued` when
    those jobs are written (flushed) and so already in the counts."""
    wanted = Counter(kind.quota for kind in kinds if kind.quota is not None)
    for quota, jobs in wanted.items():
        limit = limit_of(company, settings, quota)
        if not limit:
            continue
        # Without the new jobs themselves, when they are written already.
        current = jobs_in_flight(session, company.id, quota) - (jobs if already_queued else 0)
        if current + jobs > limit:
            raise QuotaExceeded(
                quota,
                limit,
                IN_FLIGHT_RETRY_AFTER_S,
                f"the company has {current} {_IN_FLIGHT_WORDS[quota]} queued or running and its quota is "
                f"{limit} at a time; try again in {IN_FLIGHT_RETRY_AFTER_S} s, once some have finished, or "
                f"ask the operator to raise the quota",
            )


def check_stored_bytes(
    session: Session, company: Company, settings: Settings, *, adding: int, already_counted: bool = False
) -> None:
    """Refuse when storing `adding` more bytes would take the company past its storage quota;
    `already_counted` when the upload's rows are written (flushed) and so already in the sum."""
    limit = limit_of(company, settings, STORED_BYTES)
    if not limit:
        return
    current = stored_bytes(session, company.id) - (adding if already_counted else 0)
    if current + adding > limit:
        raise QuotaExceeded(
            STORED_BYTES,
            limit,
            STORED_BYTES_RETRY_AFTER_S,
            f"the company stores {_size(current)} of uploads and its storage quota is {_size(limit)}; "
            f"this upload of {_size(adding)} does not fit. Delete portraits, AR content or videos that "
            f"are no longer needed, or ask the operator to raise the quota, then upload again",
        )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def lock_company(session: Session, company_id: int) -> Company:
    """Take the company's row for the rest of the transaction, so that quota checks of one company
    take turns. `FOR NO KEY UPDATE`: rows that only refer to the company (new jobs, portraits) do not
    wait for it. SQLite's transactions already take turns (BEGIN IMMEDIATE)."""
    company = session.scalars(
        select(Company)
        .where(Company.id == company_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)  # the limits as committed now, not as first read
    ).one_or_none()
    if company is None:
        raise LookupError(f"there is no company {company_id}")
    return company


# ---- what callers use ---------------------------------------------------------------------------


@dataclass
class AdmittedUpload:
    """An upload that passed the quotas before storing anything; `confirm` counts it at the end."""

    session: Session
    company: Company
    settings: Settings
    size_bytes: int
    kinds: Sequence[JobKind]

    def confirm(self) -> None:
        """Just before the commit, the upload's rows and jobs flushed: count it and check again under
        the company's lock; QuotaExceeded means a concurrent upload took the room (the caller rolls
        back and deletes what it stored)."""
        self.session.flush()
        company = lock_company(self.session, self.company.id)
        count_upload(self.session, company, self.settings)
        check_stored_bytes(self.session, company, self.settings, adding=self.size_bytes, already_counted=True)
        check_in_flight(self.session, company, self.settings, self.kinds, already_queued=True)


def admit_upload(
    session: Session, company_id: int, settings: Settings, *, size_bytes: int, kinds: Sequence[JobKind]
) -> AdmittedUpload:
    """Check every quota an upload of `size_bytes` that queues one job of each of `kinds` is under,
    before anything is stored; raises QuotaExceeded. Call `confirm()` on the result before commit."""
    company = session.get(Company, company_id)
    if company is None:
        raise LookupError(f"there is no company {company_id}")
    check_uploads_per_day(session, company, settings)
    check_stored_bytes(session, company, settings, adding=size_bytes)
    check_in_flight(session, company, settings, kinds)
    return AdmittedUpload(session, company, settings, size_bytes, kinds)


def admit_jobs(session: Session, company_id: int, settings: Settings, kinds: Sequence[JobKind]) -> None:
    """Check, under the company's lock (held to the caller's commit), that one more job of each of
    `kinds` fits its in-flight quota; raises QuotaExceeded."""
    check_in_flight(session, lock_company(session, company_id), settings, kinds)
