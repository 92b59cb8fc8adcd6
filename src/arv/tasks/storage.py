"""The storage task Beat sends to the default queue: collecting objects no row references."""

from __future__ import annotations

import structlog
from celery import shared_task

from arv.config import get_settings
from arv.db.session import session_scope
from arv.metrics import ORPHANED_OBJECTS_DELETED
from arv.services import orphans
from arv.storage import get_storage

log = structlog.get_logger(__name__)

_settings = get_settings()


@shared_task(
    name="collect_orphaned_objects",
    soft_time_limit=_settings.default_soft_time_limit_s,
    time_limit=_settings.default_time_limit_s,
)
def collect_orphaned_objects() -> dict[str, int]:
    """Delete storage objects no row references, once older than the grace period.

    Idempotent: two passes at once find the same orphans, and deleting a missing key is no error.
    """
    settings = get_settings()
    with session_scope() as session:
        result = orphans.collect_orphaned_objects(session, get_storage(), grace_s=settings.orphan_grace_s)
    ORPHANED_OBJECTS_DELETED.inc(result.deleted)
    counts = result.to_dict()
    # Quiet when there was nothing to collect; `listed` and `referenced` alone say only that it ran.
    if result.deleted or result.failed:
        log.info("storage.orphans_collected", **counts)
    return counts
