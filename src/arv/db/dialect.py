"""What differs between PostgreSQL and SQLite, in one place: the database's clock and upserts.

Job times come from the database's clock, never from the clock of the process that writes them: a
writer whose clock runs ahead would otherwise make a job look not yet due to every worker, and a
sweep whose clock runs ahead would take leases that are still live. `db_now()` is that clock in SQL.
On PostgreSQL it is `statement_timestamp()` (the time the statement started, not the transaction:
a long transaction does not stop the clock). SQLite is a library inside each process of one machine,
so its clock is that machine's; it is read in SQL too, so every statement reads it the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from arv.db.models import UTCDateTime

# SQLite stores UTC timestamps as text, `YYYY-MM-DD HH:MM:SS.ffffff` (SQLAlchemy's format); its own
# clock gives milliseconds, padded here to the same six digits so that text comparisons order them.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now'{offset})"


class _DatabaseNow(FunctionElement[datetime]):
    """The database's current time, optionally moved by a number of seconds (a bound expression)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "arv_db_now"


@compiles(_DatabaseNow, "postgresql")
def _postgresql_now(element: _DatabaseNow, compiler: Any, **kw: Any) -> str:
    if not element.clauses.clauses:
        return "statement_timestamp()"
    seconds = compiler.process(element.clauses.clauses[0], **kw)
    return f"(statement_timestamp() + make_interval(secs => CAST({seconds} AS DOUBLE PRECISION)))"


@compiles(_DatabaseNow, "sqlite")
def _sqlite_now(element: _DatabaseNow, compiler: Any, **kw: Any) -> str:
    if not element.clauses.clauses:
        return _SQLITE_NOW.format(offset="")
    seconds = compiler.process(element.clauses.clauses[0], **kw)
    return _SQLITE_NOW.format(offset=f", printf('%+.6f seconds', {seconds})")


def db_now(offset_s: ColumnElement[Any] | float | None = None) -> _DatabaseNow:
    """The database's clock in SQL; `offset_s` seconds later (or earlier, when negative) if given."""
    if offset_s is None:
        return _DatabaseNow()
    return _DatabaseNow(offset_s if isinstance(offset_s, ColumnElement) else literal(float(offset_s)))


def read_db_now(session: Session) -> datetime:
    """The database's current time, read once (for a report; statements use `db_now()` itself)."""
    return session.execute(db_now().select()).scalar_one()  # type: ignore[attr-defined,no-any-return]


def upsert(bind: Session | Connection, table: type[Any] | Table) -> Any:
    """An INSERT in the dialect of `bind`, with `on_conflict_do_nothing` / `on_conflict_do_update`."""
    dialect = (bind.get_bind() if isinstance(bind, Session) else bind).dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
