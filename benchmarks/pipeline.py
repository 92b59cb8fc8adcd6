"""Pipeline benchmark on PostgreSQL + Redis: 200 uploads from 20 clients, and the queue's own overhead.

Prints upload latency p50/p99, the time until every marker is ready, and the per-task cost of ARV's
job path (row written with the record, published after commit, claimed, settled) beside a bare Celery
no-op task, both measured in this run on the same broker and workers.

    .venv/bin/python -m benchmarks.pipeline [--uploads 200] [--clients 20] [--noops 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.images import photo_jpeg  # noqa: E402
from tests.support.platform import reset_caches, wait_until, worker_pool  # noqa: E402
from tests.support.servers import REDIS_URL, free_port, postgres_database, wait_for_port  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--noops", type=int, default=1000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="arv-bench-"))
    with postgres_database("arv_bench") as db_url:
        env = {
            "ARV_DATA_DIR": str(workdir / "data"),
            "ARV_DATABASE_URL": db_url,
            "ARV_BROKER_URL": REDIS_URL,
            "ARV_RESULT_BACKEND": REDIS_URL,
            "ARV_REDIS_KEY_PREFIX": f"arvbench-{uuid.uuid4().hex[:8]}:",
            "ARV_LOG_LEVEL": "WARNING",
            "ARV_JSON_LOGS": "true",
            "ARV_SECRET_KEY": "bench",
        }
        os.environ.update(env)
        reset_caches()
        from arv.db.migrate import upgrade_database
        from arv.db.models import Company
        from arv.db.session import session_scope
        from arv.services.auth import create_key

        upgrade_database()
        with session_scope() as session:
            company = Company(name="Bench studio")
            session.add(company)
            session.flush()
            key = create_key(session, company_id=company.id)
        headers = {"Authorization": f"Bearer {key}"}
        port = free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "arv", "api", "--port", str(port)], env={**os.environ, **env}, cwd=REPO
        )
        try:
            wait_for_port(port)
            if args.uploads:
                with worker_pool(env, workdir) as pool:
                    pool.start("markers", concurrency=os.cpu_count() or 2)
                    pool.start("default", concurrency=1)
                    upload_report(f"http://127.0.0.1:{port}", headers, args.uploads, args.clients)
            with worker_pool(env, workdir) as pool:
                pool.start("default", concurrency=1, extra=["-I", "benchmarks.pipeline_tasks"])
                overhead_report(args.noops)
        finally:
            api.terminate()
            api.wait(timeout=20)


def upload_report(base: str, headers: dict[str, str], uploads: int, clients: int) -> None:
    photos = [photo_jpeg(1024, 768, seed=i) for i in range(20)]
    latencies: list[float] = []
    ids: list[int] = []

    def upload(i: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            started = time.perf_counter()
            response = client.post(
                "/api/portraits/upload", files={"file": ("p.jpg", photos[i % 20], "image/jpeg")}
            )
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            ids.append(response.json()["id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as executor:
        list(executor.map(upload, range(uploads)))
    uploaded = time.perf_counter() - started

    from sqlalchemy import func, select

    from arv.db.models import Portrait
    from arv.db.session import session_scope

    def all_settled() -> bool:
        with session_scope() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(Portrait)
                    .where(Portrait.marker_status.in_(["ready", "failed"]))
                )
                == uploads
            )

    wait_until(all_settled, timeout=3600, interval=0.5, what="every marker settled")
    total = time.perf_counter() - started
    with session_scope() as session:
        failed = session.scalar(
            select(func.count()).select_from(Portrait).where(Portrait.marker_status == "failed")
        )
    print(f"\n{uploads} uploads of 1024x768 JPEG photos from {clients} concurrent clients")
    print(
        f"  upload latency   p50 {percentile(latencies, 0.5) * 1000:8.1f} ms   p99 "
        f"{percentile(latencies, 0.99) * 1000:8.1f} ms   (all accepted in {uploaded:.1f} s)"
    )
    print(f"  all markers ready after {total:.1f} s ({uploads / total:.2f} markers/s, {failed} failed)")


def overhead_report(n: int) -> None:
    from sqlalchemy import func, select

    from arv.db.models import Job, JobStatus
    from arv.db.session import session_scope
    from arv.services import jobs
    from arv.tasks.app import get_celery_app

    app = get_celery_app()
    # Bare Celery: n no-op tasks, from send to stored result.
    started = time.perf_counter()
    results = [app.send_task("bench_bare_noop", queue="default") for _ in range(n)]
    for result in results:
        result.get(timeout=600)
    bare = (time.perf_counter() - started) / n

    # ARV's job path: each job written in its own transaction (as an upload does), published after
    # commit, claimed and settled by the worker.
    started = time.perf_counter()
    for _ in range(n):
        with session_scope() as session:
            jobs.enqueue(session, task_name="bench_job_noop", queue="default", args={})

    def done() -> bool:
        with session_scope() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.kind == "bench_job_noop", Job.status == JobStatus.SUCCEEDED)
                )
                == n
            )

    wait_until(done, timeout=600, interval=0.05, what="every no-op job done")
    job_path = (time.perf_counter() - started) / n
    print(f"\nper-task cost of the queue, {n} no-op tasks each, enqueue to done")
    print(f"  {'bare Celery no-op':28s} {bare * 1000:8.2f} ms/task")
    print(f"  {'ARV job (row + claim + settle)':28s} {job_path * 1000:8.2f} ms/task")
    print(f"  ratio {job_path / bare:.2f}x (goal: at most 1.5x)")


if __name__ == "__main__":
    main()
