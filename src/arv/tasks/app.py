"""The one Celery app: broker and backend from the settings, queues and routes, and the Beat schedule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache

from celery import Celery
from kombu import Connection, Exchange, Queue

from arv.config import Settings, get_settings
from arv.logging import configure_logging
from arv.tasks import filesystem_broker

MARKERS = "markers"
NOTIFICATIONS = "notifications"
DEFAULT = "default"
QUEUES = (MARKERS, NOTIFICATIONS, DEFAULT)

# Every task and the queue it runs on; nothing else routes work.
ROUTES: dict[str, str] = {
    "generate_mind_marker_task": MARKERS,
    "generate_ar_content_marker_task": MARKERS,
    "sweep_jobs": DEFAULT,
    "check_expiring_projects": DEFAULT,
    "deactivate_expired_content": DEFAULT,
    "rotate_scheduled_videos": DEFAULT,
    "generate_qr_code": DEFAULT,
    "generate_thumbnail": DEFAULT,
    "generate_video_poster": DEFAULT,
    "deliver_notification": NOTIFICATIONS,
    "fan_out_notifications": NOTIFICATIONS,
}

TASK_MODULES = [
    "arv.tasks.observability",
    "arv.tasks.markers",
    "arv.tasks.maintenance",
    "arv.tasks.periodic",
    "arv.tasks.qr_codes",
    "arv.tasks.previews",
    "arv.tasks.notifications",
]


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Beat's periodic tasks, with their intervals from the settings."""
    return {
        "sweep_jobs": {"task": "sweep_jobs", "schedule": timedelta(seconds=settings.sweep_interval_s)},
        # The periodic passes drop a message no worker took within one interval (`expires`): the next
        # one does the same work, so a stopped worker never comes back to a queue of stale passes.
        **{
            name: {"task": name, "schedule": timedelta(seconds=interval), "options": {"expires": interval}}
            for name, interval in (
                ("check_expiring_projects", settings.expiry_check_interval_s),
                ("deactivate_expired_content", settings.expiry_deactivate_interval_s),
                ("rotate_scheduled_videos", settings.rotation_interval_s),
            )
        },
        "fan_out_notifications": {
            "task": "fan_out_notifications",
            "schedule": timedelta(seconds=settings.notification_fan_out_interval_s),
        },
    }


def broker_options(settings: Settings) -> dict[str, object]:
    if settings.celery_broker_url.startswith("filesystem://"):
        folder = settings.broker_folder
        for sub in ("queue", "control", "processed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "polling_interval": settings.filesystem_poll_interval_s,
        }
    if settings.celery_broker_url.startswith(("redis://", "rediss://")):
        options: dict[str, object] = {
            "visibility_timeout": settings.redis_visibility_timeout_s,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        }
        if settings.redis_key_prefix:
            options["global_keyprefix"] = settings.redis_key_prefix
        return options
    return {}


def create_celery_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    configure_logging(settings)
    if settings.is_sqlite or not settings.result_backend:
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery(
        "arv", broker=settings.celery_broker_url, backend=settings.celery_result_backend, include=TASK_MODULES
    )
    app.conf.update(
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_default_queue=DEFAULT,
        task_default_exchange=DEFAULT,
        task_default_routing_key=DEFAULT,
        task_routes={name: {"queue": queue, "routing_key": queue} for name, queue in ROUTES.items()},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=timedelta(days=1),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        broker_transport_options=broker_options(settings),
        # ARV's filesystem transport: a message appears in the queue folder whole, never half-written.
        broker_transport=(
            filesystem_broker.TRANSPORT if settings.celery_broker_url.startswith("filesystem://") else None
        ),
        result_backend_transport_options=(
            {"global_keyprefix": settings.redis_key_prefix} if settings.redis_key_prefix else {}
        ),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.resolved_data_dir / "beat-schedule"),
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
    )
    return app


@contextmanager
def broker_connection() -> Iterator[Connection]:
    """A pooled broker connection that fails at once when the broker is down, instead of entering
    kombu's reconnect loop: callers (an upload, the sweep, /healthz) have a better plan than waiting."""
    with get_celery_app().pool.acquire(block=True, timeout=10) as conn:
        conn.ensure_connection(max_retries=0)
        yield conn


@lru_cache
def get_celery_app() -> Celery:
    """The process's Celery app, built from the settings on first use."""
    app = create_celery_app()
    app.set_default()
    return app


def __getattr__(name: str) -> Celery:
    # `celery -A arv.tasks.app worker` looks for a module attribute named `app` or `celery`.
    if name in ("app", "celery"):
        return get_celery_app()
    raise AttributeError(name)
