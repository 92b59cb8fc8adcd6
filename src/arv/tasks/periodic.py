"""The periodic tasks Beat sends: the job sweep, expiry warnings and deactivation, video rotation, the
notification fan-out, the collection of orphaned storage objects and the pruning of ended console
sessions and links, each declared once here.

Each is thin: one set-based service pass, returning the counts it changed, recorded in `task_runs`
(its start, end and error) for /healthz and /metrics. They need no job rows: a lost or duplicated
message only moves the work to the next tick or finds nothing left to do, because every pass is
idempotent; a message no worker took within one interval expires, since the next one does the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from celery import Celery, Task

from arv.config import Settings, get_settings
from arv.db.session import session_scope
from arv.jobs import task_runs
from arv.jobs.kinds import queue_time_limits
from arv.jobs.queues import Queue
from arv.jobs.sweep import SWEEP_TASK, run_sweep
from arv.metrics import ORPHANED_OBJECTS_DELETED
from arv.services import accounts, expiry, orphans, rotation
from arv.services.notify import outbox
from arv.storage import get_storage
from arv.tasks.broker import queue_lengths

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """A task Beat sends every `interval(settings)` seconds to `queue`; `run(app)` returns counts."""

    name: str
    run: Callable[[Celery], dict[str, int]]
    interval: Callable[[Settings], float]
    queue: Queue = Queue.DEFAULT


def _sweep(app: Celery) -> dict[str, int]:
    """Take back lapsed leases and wake up jobs whose message was lost (arv.jobs.sweep)."""
    # Sent by Beat or `arv tasks run`, it sweeps even if a worker swept a moment ago: sweeps skip the
    # rows another holds, and find nothing left to do twice.
    return run_sweep(get_settings(), lambda: queue_lengths(app)).to_dict()


def _check_expiring_projects(_app: Celery) -> dict[str, int]:
    """One expiry warning per project and expiry date, inside the project's warning window."""
    with session_scope() as session:
        result = expiry.check_expiring_projects(session).to_dict()
        # The new notifications get their deliveries now, not at the next fan-out tick.
        result["deliveries_queued"] = outbox.fan_out_notifications(session)
    return result


def _deactivate_expired_content(_app: Celery) -> dict[str, int]:
    """Expire projects past their date (content stops playing) and reactivate renewed ones."""
    with session_scope() as session:
        result = expiry.deactivate_expired_content(session).to_dict()
        result["deliveries_queued"] = outbox.fan_out_notifications(session)
    return result


def _rotate_scheduled_videos(_app: Celery) -> dict[str, int]:
    """Switch each due rotation schedule's content to its next video and set its next slot."""
    with session_scope() as session:
        return rotation.rotate_scheduled_videos(session).to_dict()


def _fan_out_notifications(_app: Celery) -> dict[str, int]:
    """Deliveries and their jobs for notifications written without them (a safety net behind the
    periodic passes, which fan out their own rows right after inserting them)."""
    with session_scope() as session:
        return {"deliveries_created": outbox.fan_out_notifications(session)}


def _collect_orphaned_objects(_app: Celery) -> dict[str, int]:
    """Delete storage objects no row references, once older than the grace period."""
    settings = get_settings()
    with session_scope() as session:
        result = orphans.collect_orphaned_objects(session, get_storage(), grace_s=settings.orphan_grace_s)
    ORPHANED_OBJECTS_DELETED.inc(result.deleted)
    return result.to_dict()


def _prune_console_accounts(_app: Celery) -> dict[str, int]:
    """Delete ended console sessions, spent or expired one-time links and stale sign-in failures."""
    with session_scope() as session:
        return accounts.prune_console_accounts(session, get_settings())


PERIODIC_TASKS: tuple[PeriodicTask, ...] = (
    PeriodicTask(SWEEP_TASK, _sweep, lambda s: s.sweep_interval_s),
    PeriodicTask("check_expiring_projects", _check_expiring_projects, lambda s: s.expiry_check_interval_s),
    PeriodicTask(
        "deactivate_expired_content", _deactivate_expired_content, lambda s: s.expiry_deactivate_interval_s
    ),
    PeriodicTask("rotate_scheduled_videos", _rotate_scheduled_videos, lambda s: s.rotation_interval_s),
    PeriodicTask(
        "fan_out_notifications",
        _fan_out_notifications,
        lambda s: s.notification_fan_out_interval_s,
        Queue.NOTIFICATIONS,
    ),
    PeriodicTask(
        "collect_orphaned_objects", _collect_orphaned_objects, lambda s: s.orphan_collect_interval_s
    ),
    PeriodicTask("prune_console_accounts", _prune_console_accounts, lambda s: s.console_prune_interval_s),
)


def register_periodic_task(app: Celery, periodic: PeriodicTask, settings: Settings) -> Task:
    limits = queue_time_limits(periodic.queue, settings)

    def run() -> dict[str, int]:
        counts = task_runs.run_recorded(periodic.name, lambda: periodic.run(app)) or {}
        # Quiet when nothing changed: most of these run every minute or so.
        if any(counts.values()):
            log.info("periodic.done", task=periodic.name, **counts)
        return counts

    run.__name__ = run.__qualname__ = periodic.name
    run.__doc__ = periodic.run.__doc__
    return app.task(  # type: ignore[no-any-return]
        run, name=periodic.name, shared=False, soft_time_limit=limits.soft_s, time_limit=limits.hard_s
    )


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Beat's entries: every periodic task at its interval, its message expiring after one interval
    (a stopped worker never comes back to a queue of stale passes, nor do they hide lost jobs)."""
    return {
        periodic.name: {
            "task": periodic.name,
            "schedule": timedelta(seconds=periodic.interval(settings)),
            "options": {"expires": periodic.interval(settings)},
        }
        for periodic in PERIODIC_TASKS
    }
