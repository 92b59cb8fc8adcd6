"""Periodic tasks Beat sends to the default queue: expiry warnings, expiry deactivation, video rotation.

Each is a thin wrapper: one transaction around one set-based service pass, returning the counts it
changed. They need no job rows: a lost or duplicated message only moves the work to the next tick or
finds nothing left to do, because every pass is idempotent.
"""

from __future__ import annotations

import structlog
from celery import shared_task

from arv.config import get_settings
from arv.db.session import session_scope
from arv.services import expiry, rotation
from arv.services.notify import outbox

log = structlog.get_logger(__name__)

_settings = get_settings()
_limits = {
    "soft_time_limit": _settings.default_soft_time_limit_s,
    "time_limit": _settings.default_time_limit_s,
}


@shared_task(name="check_expiring_projects", **_limits)
def check_expiring_projects() -> dict[str, int]:
    """One expiry warning per project and expiry date, inside the project's warning window."""
    with session_scope() as session:
        result = expiry.check_expiring_projects(session).to_dict()
        # The new notifications get their deliveries now, not at the next fan-out tick.
        result["deliveries_queued"] = outbox.fan_out_notifications(session)
    _log_changes("expiry.warnings", result)
    return result


@shared_task(name="deactivate_expired_content", **_limits)
def deactivate_expired_content() -> dict[str, int]:
    """Expire projects past their date (content stops playing) and reactivate renewed ones."""
    with session_scope() as session:
        result = expiry.deactivate_expired_content(session).to_dict()
        result["deliveries_queued"] = outbox.fan_out_notifications(session)
    _log_changes("expiry.deactivation", result)
    return result


@shared_task(name="rotate_scheduled_videos", **_limits)
def rotate_scheduled_videos() -> dict[str, int]:
    """Switch each due rotation schedule's content to its next video and set its next slot."""
    with session_scope() as session:
        result = rotation.rotate_scheduled_videos(session).to_dict()
    _log_changes("rotation.pass", result)
    return result


def _log_changes(event: str, counts: dict[str, int]) -> None:
    # Quiet when nothing changed: these run every minute or so.
    if any(counts.values()):
        log.info(event, **counts)
