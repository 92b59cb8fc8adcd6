"""Transcodes on real worker processes (Redis broker, S3 on moto, PostgreSQL) under the faults a videos
worker meets: a file that makes ffmpeg run past the time limit, the worker killed with SIGKILL, the
worker's process group sent SIGTERM, the worker alone told to stop. No ffmpeg outlives the attempt
that started it, and the video ends with the renditions of the attempt that finished, or with the
reason it has none.

Each worker runs with its temporary folder (TMPDIR) in the test's own, so an ffmpeg it started is
recognised by its arguments (the job's copy of the video lies there).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from arv.config import get_settings
from arv.db.models import Job, JobStatus, Video
from arv.db.session import session_scope
from tests.conftest import Tenant
from tests.support.platform import Worker, WorkerPool, wait_until, worker_pool
from tests.support.video_matrix import frames_at_one_instant_mp4, plain_mp4
from tests.test_transcode import ffmpeg_processes, stored_keys, upload_content, videos_of

pytestmark = [pytest.mark.production_stack, pytest.mark.parametrize("db_backend", ["postgresql"])]

# A lost worker's job is free again within seconds: short leases, a sweep every second.
FAST_RECOVERY = {
    "ARV_JOB_LEASE_S": "4",
    "ARV_JOB_HEARTBEAT_S": "1",
    "ARV_SWEEP_INTERVAL_S": "1",
    "ARV_JOB_REPUBLISH_AFTER_S": "4",
    "ARV_JOB_RETRY_MAX_S": "2",
}
# Long enough to be caught mid-transcode on a busy two-core machine, short enough to transcode twice.
MID_TRANSCODE_SOURCE = {"width": 1280, "height": 720, "seconds": 30.0}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fault-inputs")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The workers' temporary folder: every ffmpeg they start has it in its arguments."""
    folder = tmp_path / "worker-temp"
    folder.mkdir()
    return folder


@pytest.fixture
def workers(arv_env: dict[str, str], tmp_path: Path, marker: Path) -> Iterator[WorkerPool]:
    with worker_pool({**arv_env, **FAST_RECOVERY, "TMPDIR": str(marker)}, tmp_path) as pool:
        yield pool


def the_video(api: TestClient, tenant: Tenant, content_id: int) -> dict[str, Any]:
    [video] = videos_of(api, tenant, content_id).values()
    return video


def transcode_job(video_id: int) -> Job:
    with session_scope() as session:
        job_id = session.scalar(select(Video.transcode_task_id).where(Video.id == video_id))
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def progress_until(api: TestClient, tenant: Tenant, content_id: int, percent: float) -> list[float]:
    """The transcode progress the API shows, polled until it passes `percent`; every value seen."""
    seen: list[float] = []

    def passed() -> bool:
        video = the_video(api, tenant, content_id)
        assert video["rendition_status"] in ("pending", "processing"), video
        if video["transcode_progress"] is not None:
            seen.append(video["transcode_progress"])
        return bool(seen) and seen[-1] >= percent

    wait_until(passed, timeout=60, interval=0.25, what=f"transcode progress past {percent} %")
    return seen


def niceness_of_threads(pid: int) -> set[int]:
    """The nice value of every thread of process `pid` (Linux keeps one a thread: /proc's stat field 19)."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            values.add(int(fields[16]))
    return values


def no_ffmpeg_left(marker: Path) -> None:
    # SIGKILL by the kernel (the parent-death signal) takes a moment to be delivered and reaped.
    wait_until(lambda: not ffmpeg_processes(str(marker)), timeout=5, interval=0.1, what="no ffmpeg left")


def ready(api: TestClient, tenant: Tenant, content_id: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        video = the_video(api, tenant, content_id)
        assert video["rendition_status"] != "failed", video["transcode_error"]
        return video if video["rendition_status"] == "ready" else None

    return wait_until(settled, timeout=120, interval=0.5, what="the renditions")  # type: ignore[no-any-return]


def only_the_winners_renditions(video_id: int) -> None:
    with session_scope() as session:
        row = session.get(Video, video_id)
        assert row is not None
        recorded = {row.rendition_key, row.small_rendition_key}
    assert None not in recorded
    assert {key for key in stored_keys() if key.startswith("renditions/")} == recorded


def test_a_transcode_past_its_soft_time_limit_is_ended_with_the_reason_and_no_ffmpeg_left(
    api: TestClient,
    tenant: Tenant,
    arv_env: dict[str, str],
    tmp_path: Path,
    marker: Path,
    inputs: Path,
) -> None:
    """A 2 s video of 100,000 pictures at one instant keeps ffmpeg busy for minutes; with the stall
    timeout out of the way, the videos queue's soft time limit ends it in the prefork child."""
    limits = {
        "ARV_VIDEO_SOFT_TIME_LIMIT_S": "4",
        "ARV_VIDEO_TIME_LIMIT_S": "30",
        "ARV_VIDEO_STALL_TIMEOUT_S": "600",
    }
    created = upload_content(api, tenant, frames_at_one_instant_mp4(inputs), "video/mp4")
    with worker_pool({**arv_env, **FAST_RECOVERY, **limits, "TMPDIR": str(marker)}, tmp_path) as pool:
        pool.start("videos")
        wait_until(lambda: ffmpeg_processes(str(marker)), timeout=30, interval=0.1, what="ffmpeg running")

        def failed() -> dict[str, Any] | None:
            video = the_video(api, tenant, created["id"])
            return video if video["rendition_status"] == "failed" else None

        video = wait_until(failed, timeout=30, interval=0.25, what="the transcode to fail")
        no_ffmpeg_left(marker)
    assert video["transcode_error"] == "took longer than the 4 s time limit and was stopped"
    job = transcode_job(video["id"])
    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert not [key for key in stored_keys() if key.startswith("renditions/")]


def test_a_worker_killed_mid_transcode_takes_its_ffmpeg_along_and_another_finishes_the_job(
    api: TestClient, tenant: Tenant, workers: WorkerPool, marker: Path, inputs: Path
) -> None:
    created = upload_content(api, tenant, plain_mp4(inputs, **MID_TRANSCODE_SOURCE), "video/mp4")
    doomed = workers.start("videos")
    seen = progress_until(api, tenant, created["id"], 10)
    [running] = ffmpeg_processes(str(marker))
    # Started niced: every thread ffmpeg made yields the CPU to compiles (ARV_VIDEO_TRANSCODE_NICENESS).
    assert niceness_of_threads(running) == {get_settings().video_transcode_niceness}

    doomed.kill_hard()
    no_ffmpeg_left(marker)
    workers.start("videos")
    video = ready(api, tenant, created["id"])

    # While it ran, the progress rose and stayed within 0..100.
    assert seen == sorted(seen) and len(set(seen)) >= 2 and seen[0] >= 0 and seen[-1] < 100
    assert video["transcode_progress"] == 100.0
    assert [r["label"] for r in video["renditions"]] == ["main", "small"]
    job = transcode_job(video["id"])
    assert job.status == JobStatus.SUCCEEDED and job.attempts >= 2 and job.lost_leases >= 1
    only_the_winners_renditions(video["id"])


def test_a_worker_stopped_mid_transcode_leaves_no_ffmpeg_and_the_job_is_tried_again(
    api: TestClient, tenant: Tenant, workers: WorkerPool, marker: Path, inputs: Path
) -> None:
    created = upload_content(api, tenant, plain_mp4(inputs, **MID_TRANSCODE_SOURCE), "video/mp4")
    stopped: Worker = workers.start("videos")
    progress_until(api, tenant, created["id"], 10)

    os.killpg(stopped.proc.pid, signal.SIGTERM)
    stopped.proc.wait(timeout=30)
    no_ffmpeg_left(marker)
    video = the_video(api, tenant, created["id"])
    assert video["rendition_status"] in ("pending", "processing"), video
    assert transcode_job(video["id"]).status in (JobStatus.QUEUED, JobStatus.RUNNING)

    started = time.monotonic()
    workers.start("videos")
    video = ready(api, tenant, created["id"])
    job = transcode_job(video["id"])
    assert job.status == JobStatus.SUCCEEDED and job.attempts >= 2
    only_the_winners_renditions(video["id"])
    assert time.monotonic() - started < 120


def test_a_worker_told_to_stop_finishes_its_transcode_before_it_exits(
    api: TestClient, tenant: Tenant, workers: WorkerPool, marker: Path, inputs: Path
) -> None:
    """SIGTERM to the worker's main process alone (what `docker stop` sends): Celery's warm shutdown
    lets the transcode end, then the worker exits, leaving no ffmpeg."""
    created = upload_content(api, tenant, plain_mp4(inputs, **MID_TRANSCODE_SOURCE), "video/mp4")
    stopping = workers.start("videos")
    progress_until(api, tenant, created["id"], 10)

    stopping.proc.send_signal(signal.SIGTERM)
    stopping.proc.wait(timeout=90)
    assert ffmpeg_processes(str(marker)) == []
    video = the_video(api, tenant, created["id"])
    assert video["rendition_status"] == "ready" and video["transcode_progress"] == 100.0
    job = transcode_job(video["id"])
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1
    only_the_winners_renditions(video["id"])
