"""Prometheus metrics: HTTP requests, tasks by queue and outcome, queue lengths, storage collected.

API and workers on one host share counters through prometheus-client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (`arv run` sets it); the API's `/metrics` then shows the workers' tasks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter("arv_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
HTTP_SECONDS = Histogram("arv_http_request_duration_seconds", "HTTP request duration.", ["method", "route"])
TASKS = Counter("arv_tasks_total", "Tasks finished, by queue and outcome.", ["queue", "task", "outcome"])
TASK_SECONDS = Histogram(
    "arv_task_duration_seconds",
    "Task run time, by queue and outcome.",
    ["queue", "task", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
ORPHANED_OBJECTS_DELETED = Counter(
    "arv_orphaned_objects_deleted_total", "Unreferenced storage objects deleted by the orphan collection."
)


class QueueCollector(Collector):
    """Queue lengths read at scrape time: messages in the broker and jobs in the database, per queue."""

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from arv.db.models import Job
        from arv.db.session import session_scope
        from arv.tasks.maintenance import broker_queue_lengths

        messages = GaugeMetricFamily(
            "arv_queue_messages", "Messages waiting in the broker.", labels=["queue"]
        )
        for queue, length in broker_queue_lengths().items():
            if length is not None:
                messages.add_metric([queue], length)
        yield messages
        jobs = GaugeMetricFamily("arv_jobs", "Jobs by queue and status.", labels=["queue", "status"])
        try:
            with session_scope() as session:
                rows = session.execute(
                    select(Job.queue, Job.status, func.count()).group_by(Job.queue, Job.status)
                )
                for queue, status, count in rows:
                    jobs.add_metric([queue, status], count)
        except Exception:  # noqa: BLE001, S110 - a scrape during a database outage still answers
            pass
        yield jobs


def render_metrics() -> tuple[bytes, str]:
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    registry_with_queues = CollectorRegistry()
    registry_with_queues.register(QueueCollector())
    return generate_latest(registry) + generate_latest(registry_with_queues), CONTENT_TYPE_LATEST
