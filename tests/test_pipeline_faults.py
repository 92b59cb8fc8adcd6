"""Faults that must not lose an upload: a worker killed mid-compile, Redis down, duplicate deliveries."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from arv.db.models import Job, JobStatus, MarkerStatus, Portrait
from arv.db.session import session_scope
from tests.conftest import Tenant, apply_env
from tests.support.images import photo_jpeg
from tests.support.pipeline import wait_for_marker
from tests.support.platform import wait_until, worker_pool
from tests.support.servers import free_port, wait_for_port

# Short limits so a lost worker's job comes back in seconds, not the production minutes.
FAST_RECOVERY = {
    "ARV_JOB_LEASE_S": "3",
    "ARV_JOB_HEARTBEAT_S": "0.5",
    "ARV_SWEEP_INTERVAL_S": "1",
    "ARV_JOB_REPUBLISH_AFTER_S": "2",
}


def _upload(api: TestClient, tenant: Tenant, data: bytes) -> dict:  # type: ignore[type-arg]
    response = api.post(
        "/api/portraits/upload", files={"file": ("p.jpg", data, "image/jpeg")}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _nothing_left_processing() -> None:
    with session_scope() as session:
        stuck = session.scalar(
            select(func.count())
            .select_from(Portrait)
            .where(Portrait.marker_status.in_([MarkerStatus.PROCESSING, MarkerStatus.PENDING]))
        )
    assert stuck == 0


@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_job_of_a_worker_killed_mid_compile_completes_on_a_new_worker(
    db_backend: str,
    arv_env: dict[str, str],
    api: TestClient,
    tenant: Tenant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**arv_env, **FAST_RECOVERY}
    apply_env(env, monkeypatch)
    big_photo = photo_jpeg(4000, 3000, seed=5)  # a 12 MP photo: a compile long enough to be caught
    with worker_pool(env, tmp_path) as pool:
        killed_mid_compile = None
        for _attempt in range(3):
            worker = pool.start("markers", concurrency=1)
            body = _upload(api, tenant, big_photo)
            wait_until(
                lambda task_id=body["task_id"]: _job(task_id).status != JobStatus.QUEUED,
                timeout=60,
                interval=0.01,
                what="the worker claiming the job",
            )
            os.killpg(worker.proc.pid, signal.SIGSTOP)  # freeze it where it is, then look
            if _job(body["task_id"]).status == JobStatus.RUNNING:
                worker.kill_hard()
                killed_mid_compile = body
                break
            worker.kill_hard()  # it finished in the blink before the freeze; try again
        assert killed_mid_compile is not None, "the compile never ran long enough to be killed mid-way"
        pool.start("markers,default", concurrency=1, beat=True)  # beat runs the sweep
        portrait = wait_for_marker(
            api, f"/api/portraits/{killed_mid_compile['id']}", tenant.headers, timeout=120
        )
    assert portrait["marker_status"] == "ready", portrait["marker_error"]
    job = _job(killed_mid_compile["task_id"])
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    _nothing_left_processing()


@contextmanager
def private_redis(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis server of this test's own, so stopping it disturbs nobody else."""
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_uploads_while_redis_is_down_are_accepted_and_complete_after_it_returns(
    db_backend: str, arv_env: dict[str, str], tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**arv_env, **FAST_RECOVERY, "ARV_BROKER_URL": url, "ARV_RESULT_BACKEND": url}
    apply_env(env, monkeypatch)
    from arv.api.app import create_app

    with TestClient(create_app()) as api:
        # Redis is down: uploads are still accepted, quickly, and recorded with their jobs.
        started = time.monotonic()
        uploads = [_upload(api, tenant, photo_jpeg(640, 480, seed=i)) for i in range(4)]
        assert time.monotonic() - started < 20
        assert all(u["marker_status"] == "pending" for u in uploads)
        with private_redis(port, tmp_path), worker_pool(env, tmp_path) as pool:
            pool.start("markers,default", concurrency=1, beat=True)
            done = [
                wait_for_marker(api, f"/api/portraits/{u['id']}", tenant.headers, timeout=120)
                for u in uploads
            ]
    assert [d["marker_status"] for d in done] == ["ready"] * 4
    _nothing_left_processing()


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_duplicate_delivery_compiles_once(
    db_backend: str, arv_env: dict[str, str], api: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    from arv.jobs.publisher import Wakeup
    from arv.tasks.app import get_celery_app
    from arv.tasks.broker import wakeup_sender

    body = _upload(api, tenant, photo_jpeg(800, 600, seed=2))
    # The message is delivered three times in all (a redelivery, a sweep that raced, a second Beat).
    duplicate = Wakeup(body["task_id"], "generate_mind_marker_task", "markers")
    assert wakeup_sender(get_celery_app())([duplicate, duplicate]) == 2
    with worker_pool({**arv_env, "ARV_LOG_LEVEL": "INFO"}, tmp_path) as pool:
        worker = pool.start("markers", concurrency=2)
        portrait = wait_for_marker(api, f"/api/portraits/{body['id']}", tenant.headers)
        wait_until(lambda: worker.log().count("task.end") >= 3, timeout=30, what="all three deliveries")
    assert portrait["marker_status"] == "ready"
    assert _job(body["task_id"]).attempts == 1  # claimed, hence compiled, exactly once
    assert worker.log().count("job.skipped") == 2
