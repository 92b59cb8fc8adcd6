"""The pooled PostgreSQL connections survive the server dropping them between uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from arv.db.session import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))  # type: ignore[arg-type]


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()


def test_a_connection_the_server_dropped_while_pooled_is_replaced_unnoticed(engine: Engine) -> None:
    # As after a server restart or an idle timeout: the pool's connection is gone when next used.
    pid = _backend_pid(engine)
    other = make_engine(str(engine.url))
    with other.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()

    assert _backend_pid(engine) != pid
