"""The one Celery app: broker and backend from the settings, queues, and the tasks and routes derived
from the job kinds and the periodic tasks, with Beat's schedule."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from celery import Celery
from kombu import Exchange, Queue

from arv.config import Settings, get_settings
from arv.jobs.kinds import registered_kinds
from arv.jobs.publisher import use_publisher
from arv.jobs.queues import QUEUES
from arv.jobs.queues import Queue as JobQueue
from arv.logging import configure_logging
from arv.private_files import private_dir, private_file
from arv.services import accounts, deletion, markers, previews, qr_codes, transcode
from arv.services.notify import delivery
from arv.tasks import filesystem_broker
from arv.tasks.broker import wakeup_sender
from arv.tasks.job_tasks import register_job_task
from arv.tasks.periodic import PERIODIC_TASKS, beat_schedule, register_periodic_task

# The feature modules whose job kinds this app runs: importing one registers its kinds.
FEATURES = (markers, previews, qr_codes, transcode, delivery, deletion, accounts)
# Modules that connect Celery signals: task logs and metrics, and every worker's sweeping thread.
SIGNAL_MODULES = ["arv.tasks.observability", "arv.tasks.sweeper"]


def task_routes() -> dict[str, dict[str, str]]:
    """Every task and its queue, derived from the job kinds and the periodic tasks: nothing else routes."""
    queues = {kind.name: kind.queue for kind in registered_kinds()}
    queues.update({periodic.name: periodic.queue for periodic in PERIODIC_TASKS})
    return {name: {"queue": queue.value, "routing_key": queue.value} for name, queue in queues.items()}


def broker_options(settings: Settings) -> dict[str, object]:
    if settings.celery_broker_url.startswith("filesystem://"):
        folder = settings.broker_folder
        for sub in ("queue", "control", "processed"):
            private_dir(folder / sub)
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
        private_dir(settings.resolved_data_dir)
    if not settings.result_backend and not settings.broker_url.startswith(("redis://", "rediss://")):
        # Celery's SQLite result store: created by SQLite with the umask otherwise.
        private_file(settings.resolved_data_dir / "results.db")
    app = Celery(
        "arv",
        broker=settings.celery_broker_url,
        backend=settings.celery_result_backend,
        include=SIGNAL_MODULES,
    )
    default = JobQueue.DEFAULT.value
    app.conf.update(
        task_queues=[Queue(name.value, Exchange(name.value), routing_key=name.value) for name in QUEUES],
        task_default_queue=default,
        task_default_exchange=default,
        task_default_routing_key=default,
        task_routes=task_routes(),
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
    for kind in registered_kinds():
        register_job_task(app, kind, settings)
    for periodic in PERIODIC_TASKS:
        register_periodic_task(app, periodic, settings)
    return app


@lru_cache
def get_celery_app() -> Celery:
    """The process's Celery app, built from the settings on first use; the job layer publishes
    wake-ups through its broker from then on."""
    app = create_celery_app()
    app.set_default()
    use_publisher(wakeup_sender(app))
    return app


def __getattr__(name: str) -> Celery:
    # `celery -A arv.tasks.app worker` looks for a module attribute named `app` or `celery`.
    if name in ("app", "celery"):
        return get_celery_app()
    raise AttributeError(name)
