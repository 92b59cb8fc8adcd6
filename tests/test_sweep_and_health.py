"""The sweep needs no Beat and sees the broker as it is; /healthz and /metrics say when it last ran."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arv.config import get_settings
from arv.db.models import Job, TaskRun
from arv.db.session import session_scope
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, TimeLimits
from arv.jobs.queues import QUEUES, Queue
from arv.jobs.runner import run_job
from arv.jobs.sweep import SWEEP_TASK, offer_to_sweep
from arv.tasks.app import get_celery_app
from arv.tasks.broker import queue_lengths, wakeup_sender
from arv.tasks.periodic import beat_schedule
from tests.conftest import apply_env


def _no_broker() -> dict[str, int | None]:
    return dict.fromkeys(QUEUES, 0)


@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_queue_lengths_are_exact_under_a_redis_key_prefix(db_backend: str, arv_env: dict[str, str]) -> None:
    # kombu's passive declaration does not see a prefixed queue: every length read as unknown, and the
    # sweep republished the whole backlog every interval.
    assert arv_env["ARV_REDIS_KEY_PREFIX"]
    from arv.jobs.publisher import Wakeup

    app = get_celery_app()
    empty = {"markers": 0, "notifications": 0, "default": 0, "videos": 0}
    assert queue_lengths(app) == empty
    sent = wakeup_sender(app)([Wakeup(f"job-{i}", "generate_thumbnail", "default") for i in range(3)])
    assert sent == 3
    assert queue_lengths(app) == {**empty, "default": 3}


def test_of_the_workers_offering_to_sweep_one_sweeps_per_interval(arv_env: dict[str, str]) -> None:
    settings = get_settings()
    results = [offer_to_sweep(settings, _no_broker) for _ in range(5)]
    assert sum(r is not None for r in results) == 1
    with session_scope() as session:
        run = session.get(TaskRun, SWEEP_TASK)
        assert run is not None and run.runs == 1 and run.last_finished_at is not None
        # An interval later, the next offer sweeps.
        run.last_started_at = run.last_started_at - timedelta(seconds=settings.sweep_interval_s)  # type: ignore[operator]
    assert offer_to_sweep(settings, _no_broker) is not None


def test_every_periodic_message_expires_after_one_interval() -> None:
    # Behind a stopped worker, messages without an expiry piled up and were counted as the queue's.
    for name, entry in beat_schedule(get_settings()).items():
        assert entry["options"]["expires"] == entry["schedule"].total_seconds(), name  # type: ignore[index,union-attr]


def test_healthz_reports_the_sweep_and_turns_unhealthy_when_it_stops(
    arv_env: dict[str, str], admin_headers: dict[str, str]
) -> None:
    from arv.api.app import create_app

    with TestClient(create_app()) as api:
        # The reasons are the operator's to read (tests/test_hardening.py: the public view has none).
        never = api.get("/healthz", headers=admin_headers)
        assert never.status_code == 503
        assert never.json()["checks"]["sweep"]["ok"] is False
        assert "never run" in never.json()["checks"]["sweep"]["error"]

        assert offer_to_sweep(get_settings(), _no_broker) is not None
        fresh = api.get("/healthz").json()
        assert fresh["checks"]["sweep"]["ok"] is True, fresh
        assert fresh["periodic"][SWEEP_TASK]["age_s"] < 5

        stale_by = 3 * get_settings().sweep_interval_s + 1
        with session_scope() as session:
            run = session.get_one(TaskRun, SWEEP_TASK)
            run.last_finished_at = run.last_finished_at - timedelta(seconds=stale_by)  # type: ignore[operator]
        stale = api.get("/healthz", headers=admin_headers)
        assert stale.status_code == 503
        assert stale.json()["checks"]["sweep"]["ok"] is False
        assert "is any worker running" in stale.json()["checks"]["sweep"]["error"]


def test_metrics_export_the_age_of_each_periodic_task(
    arv_env: dict[str, str], admin_headers: dict[str, str]
) -> None:
    from arv.api.app import create_app

    offer_to_sweep(get_settings(), _no_broker)
    with TestClient(create_app()) as api:
        body = api.get("/metrics", headers=admin_headers).text
    (line,) = [
        ln for ln in body.splitlines() if ln.startswith('arv_periodic_task_age_seconds{task="sweep_jobs"}')
    ]
    assert 0 <= float(line.split()[-1]) < 5


def test_a_job_stuck_in_a_thread_pool_is_ended_at_its_soft_limit(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Celery's thread pool enforces no time limits: the heartbeat raises the limit in the task's thread.
    apply_env({**arv_env, "ARV_JOB_HEARTBEAT_S": "0.1"}, monkeypatch)

    class TookTooLong(Exception):
        pass

    def hangs(_session: Any, _job: Job) -> JobOutcome:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a loop that never returns on its own
            time.sleep(0.01)
        return JobOutcome({"finished": True})

    kind = JobKind(
        name="test_hangs",
        queue=Queue.DEFAULT,
        run=hangs,
        time_limits=lambda _s: TimeLimits(soft_s=0.5, hard_s=1),
    )
    with session_scope() as session:
        job_id = store.enqueue(session, kind, {})
    raised: list[BaseException] = []

    def in_a_pool_thread() -> None:
        try:
            run_job(kind, job_id, time_limit_error=TookTooLong)
        except TookTooLong as exc:
            raised.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=in_a_pool_thread)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and raised, "the stuck job was not ended"
    assert time.monotonic() - started < 5
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "failed"
        assert "took longer than the 0.5 s time limit" in (job.error or "")
