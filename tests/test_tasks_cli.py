"""`arv tasks run NAME`: through a real worker, in-process with --inline, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from arv.cli.tasks import periodic_task_names
from arv.db.models import ARContent, Project, utcnow
from arv.db.session import session_scope
from tests.support.platform import worker_pool
from tests.support.records import make_company, make_content


def arv(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arv", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_project(expires_in: timedelta) -> int:
    """A project of a new company, with one AR content, expiring `expires_in` from now."""
    company = make_company(contact_email="owner@photostudio.com")
    content_id, _ = make_content(company, videos=0, project_expires_at=utcnow() + expires_in)
    with session_scope() as session:
        return session.get_one(ARContent, content_id).project_id


def test_task_sent_to_a_worker_prints_the_counts_it_changed(arv_env: dict[str, str], tmp_path: Path) -> None:
    project = make_project(timedelta(minutes=-1))
    make_project(timedelta(days=2))
    with worker_pool(arv_env, tmp_path) as pool:
        pool.start(queues="default")
        expired = arv(arv_env, "tasks", "run", "deactivate_expired_content")
        warned = arv(arv_env, "tasks", "run", "check_expiring_projects")
        again = arv(arv_env, "tasks", "run", "check_expiring_projects")
        swept = arv(arv_env, "tasks", "run", "sweep_jobs")
    assert expired.returncode == 0, expired.stderr
    assert json.loads(expired.stdout) == {
        "projects_expired": 1,
        "contents_deactivated": 1,
        "expired_notifications_created": 1,
        "projects_reactivated": 0,
        "contents_reactivated": 0,
        "deliveries_queued": 1,
    }
    assert json.loads(warned.stdout) == {"warnings_created": 1, "deliveries_queued": 1}
    assert json.loads(again.stdout) == {"warnings_created": 0, "deliveries_queued": 0}
    assert swept.returncode == 0 and isinstance(json.loads(swept.stdout), dict), swept.stderr
    with session_scope() as session:
        assert session.get_one(Project, project).status == "expired"


def test_inline_run_needs_no_worker(arv_env: dict[str, str]) -> None:
    project = make_project(timedelta(minutes=-1))
    result = arv(arv_env, "tasks", "run", "deactivate_expired_content", "--inline")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["projects_expired"] == 1
    rotated = arv(arv_env, "tasks", "run", "rotate_scheduled_videos", "--inline")
    assert json.loads(rotated.stdout) == {"rotated": 0, "contents_switched": 0}
    with session_scope() as session:
        assert session.get_one(Project, project).status == "expired"


def test_without_a_worker_the_command_says_so_and_fails(arv_env: dict[str, str]) -> None:
    project = make_project(timedelta(minutes=-1))
    result = arv(arv_env, "tasks", "run", "deactivate_expired_content", "--timeout", "2")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: no worker answered within 2 s")
    assert "'default' queue" in last_line and "--inline" in last_line
    assert result.stdout == ""
    with session_scope() as session:
        assert session.get_one(Project, project).status == "active"


def test_unknown_task_name_is_one_line_error(arv_env: dict[str, str]) -> None:
    result = arv(arv_env, "tasks", "run", "expire_everything", "--inline")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown task 'expire_everything'; the periodic tasks are: " + ", ".join(periodic_task_names())
    ]
    assert {
        "sweep_jobs",
        "check_expiring_projects",
        "deactivate_expired_content",
        "rotate_scheduled_videos",
    } <= set(periodic_task_names())
