"""The one engine and session factory of a process, built from the settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from arv.config import get_settings
from arv.private_files import private_file


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout so workers and the API can share it."""
    if not url.startswith("sqlite"):
        # A session left inside a transaction by a client that vanished (a worker cut off between a
        # statement and its COMMIT) holds its row locks until the server ends it: this bounds that.
        idle_ms = int(get_settings().db_idle_in_transaction_timeout_s * 1000)
        engine = create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            connect_args={"options": f"-c idle_in_transaction_session_timeout={idle_ms}"},
        )
        _ping_when_idle(engine)
        return engine
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        # SQLite makes the -wal and -shm files with the database's mode: all three are 0600.
        private_file(Path(database))
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # pysqlite opens transactions on its own; the "begin" hook below does it instead.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin_immediate(conn):  # type: ignore[no-untyped-def]
        # BEGIN IMMEDIATE takes the write lock up front, so a read-then-write transaction never
        # fails half-way with "database is locked" when two writers meet.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# A pooled connection back in use within this many seconds is trusted without a ping.
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection with a round trip only when it sat idle: after a quiet spell (when a
    restarted server or a closed socket is likely), not before every transaction of a busy process.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one round trip in five of a worker's no-op
    job. A connection lost within the window fails the statement that uses it (an API request answers
    500 once; a job's claim fails and the sweep publishes the job again), and SQLAlchemy then replaces
    the pool's connections.
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _note_last_use(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["last_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(
        dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        if time.monotonic() - record.info.get("last_used", 0.0) < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool replaces this connection (and any older one) and checks out a fresh one.
            raise exc.InvalidatePoolError(f"pooled connection failed its ping: {error}") from error


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().sqlalchemy_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine(*, close: bool = True) -> None:
    """Forget the cached engine (tests and forked workers use a fresh one).

    A forked child passes `close=False`: the connections it inherited are its parent's, and closing
    them would end the parent's sessions with the server.
    """
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=close)
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
