"""Prometheus metrics: HTTP requests, tasks by queue and outcome, queue lengths, storage collected.

API and workers on one host share counters through prometheus-client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (`arv run` sets it); the API's `/metrics` then shows the workers' tasks.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
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


def render_metrics(*scraped: Collector) -> tuple[bytes, str]:
    """The process's metrics (every process's, in multiprocess mode) and those `scraped` now."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    at_scrape = CollectorRegistry()
    for collector in scraped:
        at_scrape.register(collector)
    return generate_latest(registry) + generate_latest(at_scrape), CONTENT_TYPE_LATEST
