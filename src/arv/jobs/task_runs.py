"""When each periodic task last ran, by the database's clock, and turns for the job sweep.

Every periodic pass records its start and end here; /healthz and /metrics read the ages. The sweep
also takes its turn here: every worker offers to sweep, and a conditional upsert lets one of them
start per interval, on PostgreSQL and SQLite alike, so the sweep needs neither Beat nor any one
process to stay alive.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Table, select, update

from arv.db.dialect import db_now, upsert
from arv.db.models import TaskRun
from arv.db.session import get_engine

T = TypeVar("T")

_runs: Table = TaskRun.__table__  # type: ignore[assignment]


def take_turn(connection: Connection, name: str, *, min_interval_s: float) -> bool:
    """Start a run of `name` unless one started less than `min_interval_s` ago; True if this one runs."""
    statement = (
        upsert(connection, TaskRun)
        .values(name=name, last_started_at=db_now(), runs=0)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"last_started_at": db_now()},
            where=(_runs.c.last_started_at.is_(None)) | (_runs.c.last_started_at <= db_now(-min_interval_s)),
        )
        .returning(_runs.c.name)
    )
    with connection.begin():
        return connection.execute(statement).first() is not None


def finish(connection: Connection, name: str, *, error: str | None = None) -> None:
    """Record the end of a run of `name` (and why it failed, if it did)."""
    with connection.begin():
        connection.execute(
            update(_runs)
            .where(_runs.c.name == name)
            .values(last_finished_at=db_now(), last_error=error, runs=_runs.c.runs + 1)
        )


def run_recorded(name: str, work: Callable[[], T], *, min_interval_s: float = 0.0) -> T | None:
    """Run `work` as a run of periodic task `name`, recording its start, end and error; None (and
    nothing run) when another run of it started less than `min_interval_s` ago."""
    engine = get_engine()
    with engine.connect() as connection:
        if not take_turn(connection, name, min_interval_s=min_interval_s):
            return None
    error: str | None = None
    try:
        return work()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        with engine.connect() as connection:
            finish(connection, name, error=error)


def ages(connection: Connection) -> tuple[datetime, dict[str, TaskRun]]:
    """The database's time now, and every task's last run."""
    now = connection.execute(select(db_now())).scalar_one()
    rows = connection.execute(select(_runs)).all()
    return now, {row.name: TaskRun(**row._mapping) for row in rows}
