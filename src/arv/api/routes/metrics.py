"""Prometheus metrics of the API, the tasks and the queues, with what is read at scrape time: queue
lengths in the broker, jobs by queue and status, and the age of each periodic task's last run."""

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arv.api.deps import AdminPrincipal, SessionDep
from arv.db.models import Job
from arv.jobs import task_runs
from arv.metrics import render_metrics
from arv.tasks.app import get_celery_app
from arv.tasks.broker import queue_lengths

router = APIRouter(tags=["metrics"])


class ScrapeTimeCollector(Collector):
    """Read at scrape time, in the request's session (on SQLite another connection would wait for the
    request's own write lock); a scrape during a broker or database outage answers without them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        messages = GaugeMetricFamily(
            "arv_queue_messages", "Messages waiting in the broker.", labels=["queue"]
        )
        for queue, length in queue_lengths(get_celery_app()).items():
            if length is not None:
                messages.add_metric([queue], length)
        yield messages
        jobs = GaugeMetricFamily("arv_jobs", "Jobs by queue and status.", labels=["queue", "status"])
        ages = GaugeMetricFamily(
            "arv_periodic_task_age_seconds",
            "Seconds since each periodic task (sweep_jobs among them) last finished, by the database clock.",
            labels=["task"],
        )
        try:
            connection = self.session.connection()
            rows = connection.execute(
                select(Job.queue, Job.status, func.count()).group_by(Job.queue, Job.status)
            )
            for queue, status, count in rows:
                jobs.add_metric([queue, status], count)
            now, runs = task_runs.ages(connection)
            for name, run in runs.items():
                if run.last_finished_at is not None:
                    ages.add_metric([name], (now - run.last_finished_at).total_seconds())
        except Exception:  # noqa: BLE001, S110 - the database is away: these series are left out
            pass
        yield jobs
        yield ages


@router.get("/metrics", include_in_schema=False)
def metrics(_admin: AdminPrincipal, session: SessionDep) -> Response:
    body, content_type = render_metrics(ScrapeTimeCollector(session))
    return Response(body, media_type=content_type)
