"""Pipeline benchmark on PostgreSQL + Redis: 200 uploads from 20 clients, and the queue's own overhead.

Prints upload latency p50/p99, the time until every marker is ready, and the per-task cost of ARV's
job path (row written with the record, published after commit, claimed, settled) beside a bare Celery
no-op task, both measured in this run on the same broker and workers.

    .venv/bin/python -m benchmarks.pipeline [--uploads 200] [--clients 20] [--noops 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
    parser.add_argument("--noops", type=int, default=1000, help="no-op tasks a round, each side")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the overhead test")
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
            # 200 uploads at once measure the pipeline, not the compile quota.
            company = Company(name="Bench studio", quota_compiles_in_flight=0)
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
            # The overhead first, on a quiet machine: the uploads leave the disk busy writing their
            # files back for a while after, which would slow every commit of the rounds.
            with worker_pool(env, workdir) as pool:
                pool.start("default", concurrency=1, extra=["-I", "benchmarks.pipeline_tasks"])
                overhead_report(args.noops, args.rounds)
            if args.uploads:
                with worker_pool(env, workdir) as pool:
                    pool.start("markers", concurrency=os.cpu_count() or 2)
                    pool.start("default", concurrency=1)
                    upload_report(f"http://127.0.0.1:{port}", headers, args.uploads, args.clients)
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


def overhead_report(n: int, rounds: int) -> None:
    """Per-task cost, enqueue to done, of a bare Celery no-op and of a no-op through ARV's job path.

    The two alternate for `rounds` rounds and each side's median round is reported: on a shared
    machine one round of either can be slowed by unrelated work, and alternating exposes both to it.
    """
    from arv.tasks.app import get_celery_app

    app = get_celery_app()
    bare_rounds: list[float] = []
    job_rounds: list[float] = []
    for _round in range(rounds):
        bare_rounds.append(_bare_round(app, n))
        job_rounds.append(_job_round(n))
    bare, job_path = statistics.median(bare_rounds), statistics.median(job_rounds)
    print(
        f"\nper-task cost of the queue, {n} no-op tasks a round, enqueue to done, median of {rounds} rounds"
    )
    print(f"  {'bare Celery no-op':32s} {bare * 1000:6.2f} ms/task   rounds: {_ms(bare_rounds)}")
    print(
        f"  {'ARV job (row + claim + settle)':32s} {job_path * 1000:6.2f} ms/task   rounds: {_ms(job_rounds)}"
    )
    print(f"  ratio {job_path / bare:.2f}x (goal: at most 1.5x)")


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.2f}" for v in values)


def _bare_round(app: Any, n: int) -> float:
    # Bare Celery: n no-op tasks, from send to stored result.
    started = time.perf_counter()
    results = [app.send_task("bench_bare_noop", queue="default") for _ in range(n)]
    for result in results:
        result.get(timeout=600)
    return (time.perf_counter() - started) / n


def _job_round(n: int) -> float:
    # ARV's job path: each job written in its own transaction (as an upload does), published after
    # commit, claimed and settled by the worker.
    from sqlalchemy import func, select

    from arv.db.models import Job, JobStatus
    from arv.db.session import session_scope
    from arv.jobs import store
    from benchmarks.pipeline_tasks import BENCH_NOOP

    started = time.time()
    ids = []
    for _ in range(n):
        with session_scope() as session:
            ids.append(store.enqueue(session, BENCH_NOOP, {}))

    def last_done() -> bool:
        # A primary-key lookup: polling must not load the database it measures.
        with session_scope() as session:
            return session.get_one(Job, ids[-1]).status == JobStatus.SUCCEEDED

    def all_done() -> bool:
        with session_scope() as session:
            finished = (
                select(func.count())
                .select_from(Job)
                .where(Job.id.in_(ids), Job.status == JobStatus.SUCCEEDED)
            )
            return session.scalar(finished) == n

    # Done is when the last job was settled, read from the rows: the poll's interval is not measured,
    # so it can be slow enough not to load the database it watches.
    wait_until(last_done, timeout=600, interval=0.05, what="the last no-op job done")
    wait_until(all_done, timeout=600, interval=0.05, what="every no-op job done")
    with session_scope() as session:
        last_settled = session.scalar(select(func.max(Job.finished_at)).where(Job.id.in_(ids)))
    assert last_settled is not None
    return (last_settled.timestamp() - started) / n


if __name__ == "__main__":
    main()
