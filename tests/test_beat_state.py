"""Beat keeps its state in the data dir: a restart neither repeats recent runs nor bursts after downtime."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from celery.beat import PersistentScheduler

from arv.config import get_settings
from arv.tasks.app import create_celery_app
from arv.tasks.periodic import beat_schedule
from tests.support.platform import reset_caches

PERIODIC = ("check_expiring_projects", "deactivate_expired_content", "rotate_scheduled_videos", "sweep_jobs")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARV_DATA_DIR", str(tmp_path / "data"))
    reset_caches()
    yield tmp_path / "data"
    reset_caches()


def sent_messages(data_dir: Path) -> Counter[str]:
    """Task names of the messages waiting in the embedded broker's folder."""
    names: Counter[str] = Counter()
    for message in (data_dir / "broker" / "queue").glob("*.msg"):
        names[json.loads(message.read_text())["headers"]["task"]] += 1
    return names


def start_beat() -> PersistentScheduler:
    """What `arv beat` starts: the default scheduler, with the project's app and schedule file."""
    app = create_celery_app(get_settings())
    return PersistentScheduler(app=app, schedule_filename=app.conf.beat_schedule_filename, lazy=False)


def run_for(scheduler: PersistentScheduler, ticks: int = 20) -> None:
    for _ in range(ticks):
        scheduler.tick()


def test_beat_state_lives_in_the_data_dir(data_dir: Path) -> None:
    app = create_celery_app(get_settings())
    assert Path(app.conf.beat_schedule_filename).parent == data_dir.resolve()
    assert set(PERIODIC) <= {entry["task"] for entry in beat_schedule(get_settings()).values()}


def test_restart_after_downtime_runs_each_task_once_then_keeps_its_interval(data_dir: Path) -> None:
    beat = start_beat()
    run_for(beat)
    first_run = sent_messages(data_dir)
    # A Beat with no stored state counts its entries as just run: the first runs come one interval later.
    assert first_run == Counter()
    # Beat was stopped a day ago: every entry's last run is a day old in the stored state.
    for entry in beat.schedule.values():
        entry.last_run_at = entry.last_run_at - timedelta(days=1)
    beat.sync()
    beat.close()

    restarted = start_beat()
    run_for(restarted)
    after_downtime = sent_messages(data_dir) - first_run
    # A day missed is one run of each task (not 1,440 rotations and 5,760 sweeps), sent at once.
    assert {name: after_downtime[name] for name in PERIODIC} == dict.fromkeys(PERIODIC, 1)
    restarted.close()

    again = start_beat()
    run_for(again)
    # Restarted right away: the stored state says everything just ran, so nothing is sent again.
    assert sent_messages(data_dir) - first_run - after_downtime == Counter()
    again.close()
    assert any(Path(str(again.schedule_filename) + s).exists() for s in ("", ".db", ".dat"))
