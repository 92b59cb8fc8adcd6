"""Collecting orphaned storage objects: objects no row references, once older than a grace period.

Every writer stores its object before the commit that references it (an upload stores its files, then
commits its rows; a compile stores its marker, then points the record at it), so an API killed
mid-upload, a compile whose commit never came, or a marker superseded by a newer one leaves objects
nothing points to. This pass lists storage page by page in key order, asks the database in one
statement per page which of the page's keys any key column (`STORAGE_KEY_COLUMNS`) holds, and deletes
the other objects of the page last written more than `grace_s` before `now`. Memory holds one page.

The guarantee: an object a committed row references is never deleted, nor one a row will reference
once its writer commits, provided the writer commits within `grace_s` of writing the object (the
setting is an hour; an upload or a compile takes seconds to minutes).

- A row committed before a page's check is seen by the check: the pass ends its transaction before it
  reads the clock and after each check, so every check reads a snapshot begun after `now`.
- The listing and the check are not one snapshot: a row may commit between them, and no lock makes the
  two agree. The grace period does. An object is deleted only if it was last written before
  `now - grace_s`; its writer, committing within `grace_s` of that write, committed before `now`, so
  its row is in the check's snapshot and the object counts as referenced. An object written too
  recently for that argument is young: it is left alone, and a later pass decides.

What the guarantee rests on, and so what it does not cover:

- Clocks: `last_modified` comes from the storage's clock and `now` from this process's; a skew between
  the two shortens or lengthens the grace period by as much.
- Keys written once: keys named after a record or a job (`thumbnails/…`, `posters/…`, `qr/…`,
  `markers/<job id>.mind`) are rewritten by a retry. An old unreferenced object rewritten between its
  page's listing and its delete (one statement and the page's deletes) is lost with the rewrite; that
  takes a first write that never committed and a retry of it more than `grace_s` later, landing
  in that window.
- Prefixes: only keys under `STORAGE_KEY_PREFIXES`, the folders ARV writes to, are listed, so a bucket
  shared with anything else loses nothing of the other's; a writer using a new prefix must add it there
  for its orphans to be collected.

Cost: a page's check reads every key column. Without an index on the key columns that is a scan of
`portraits`, `ar_contents` and `videos` per page (on PostgreSQL about 0.25 s per page with 300,000
rows in each), so a whole pass grows with objects times rows; with an index on each key column a page
is one probe per key and column (about 0.02 s on the same data).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, bindparam, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from arv.db.models import ARContent, Portrait, Video
from arv.storage import Storage, StorageError, StoredObject

log = structlog.get_logger(__name__)

# Every column that holds a storage key. A key in none of them is an orphan, so a column missing here
# would have its objects deleted: tests/test_orphans.py fails when a model gains a `*_key` column that
# is neither listed here nor named there as not a storage key.
STORAGE_KEY_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    Portrait.image_key,
    Portrait.marker_key,
    Portrait.thumbnail_key,
    ARContent.image_key,
    ARContent.marker_key,
    ARContent.thumbnail_key,
    ARContent.qr_png_key,
    ARContent.qr_svg_key,
    Video.storage_key,
    Video.poster_key,
    Video.rendition_key,
    Video.small_rendition_key,
)

# The folders ARV writes its objects under: uploads (`images/`, `videos/`, arv.api.uploads), compiled
# markers (arv.services.markers), previews and QR codes (arv.services.previews, arv.services.qr_codes),
# web renditions of videos (arv.services.transcode).
STORAGE_KEY_PREFIXES: tuple[str, ...] = (
    "images/", "markers/", "posters/", "qr/", "renditions/", "thumbnails/", "videos/",
)  # fmt: skip


def _referenced_keys_statement() -> Select[tuple[Any]]:
    """Which of the bound `keys` some row holds in a key column: one statement over all of them.

    Both PostgreSQL and SQLite push the `IN` into each arm of the `UNION ALL`, so an index on a key
    column, where there is one, serves its arm.
    """
    every_reference = union_all(*(select(column.label("key")) for column in STORAGE_KEY_COLUMNS)).subquery(
        "every_reference"
    )
    return (
        select(every_reference.c.key)
        .where(every_reference.c.key.in_(bindparam("keys", expanding=True)))
        .distinct()
    )


REFERENCED_KEYS = _referenced_keys_statement()


@dataclass
class OrphanResult:
    """Counts of one pass: objects `listed`, of which `referenced` by a row, `young` (unreferenced but
    inside the grace period), `deleted`, and `failed` (unreferenced and old, but the delete failed)."""

    listed: int = 0
    referenced: int = 0
    young: int = 0
    deleted: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def collect_orphaned_objects(
    session: Session,
    storage: Storage,
    *,
    grace_s: float,
    page_size: int = 1000,
    now: datetime | None = None,
) -> OrphanResult:
    """Delete the objects under `STORAGE_KEY_PREFIXES` that no row references and that were last
    written more than `grace_s` seconds before `now` (default: the current time), `page_size` objects
    at a time.

    Ends the session's transaction before it starts and after each page's check (it writes nothing).
    A failed delete is counted and logged, and the object is tried again by the next pass; a failed
    listing raises StorageError.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    session.commit()  # every check must read a snapshot begun after `now` is read (see the guarantee)
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace_s)
    result = OrphanResult()
    for prefix in STORAGE_KEY_PREFIXES:
        after: str | None = None
        while True:
            page = storage.list_objects(prefix, start_after=after, limit=page_size)
            if page:
                _collect_page(session, storage, page, cutoff, result)
            if len(page) < page_size:
                break
            after = page[-1].key
    return result


def _collect_page(
    session: Session, storage: Storage, page: list[StoredObject], cutoff: datetime, result: OrphanResult
) -> None:
    referenced = set(session.scalars(REFERENCED_KEYS, {"keys": [stored.key for stored in page]}))
    # The deletes below may take a while; no transaction (on SQLite, no write lock) is held meanwhile.
    session.commit()
    result.listed += len(page)
    for stored in page:
        if stored.key in referenced:
            result.referenced += 1
        elif stored.last_modified >= cutoff:
            result.young += 1
        else:
            try:
                storage.delete(stored.key)
            except StorageError as exc:
                result.failed += 1
                log.warning("storage.orphan_delete_failed", key=stored.key, error=str(exc))
            else:
                result.deleted += 1
