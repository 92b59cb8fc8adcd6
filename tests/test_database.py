"""The pooled PostgreSQL connections: checked after a quiet spell, trusted while in steady use, and
replaced when the server dropped them (a restart, an idle timeout)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from arv.db import session as db_session
from arv.db.session import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))  # type: ignore[arg-type]


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()


def _drop_pooled_connection(engine: Engine) -> int:
    """Use a connection, return it to the pool, and have the server end it; returns its pid."""
    pid = _backend_pid(engine)
    other = make_engine(str(engine.url))
    with other.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()
    return pid


def test_a_connection_dropped_while_idle_is_replaced_unnoticed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _drop_pooled_connection(engine)
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)  # any pause counts as a quiet spell

    assert _backend_pid(engine) != pid


def test_a_connection_in_steady_use_is_not_pinged_and_a_lost_one_is_replaced_after_its_error(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _drop_pooled_connection(engine)
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 3600.0)  # every checkout counts as steady use

    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != pid


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_an_api_request_on_a_dropped_connection_answers_503_and_the_next_one_succeeds(
    db_backend: str, api: TestClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arv.db.session import get_engine

    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 3600.0)  # the lost connection is used unpinged
    _drop_pooled_connection(get_engine())
    refused = api.post("/api/companies", json={"name": "Studio"}, headers=admin_headers)
    assert refused.status_code == 503, refused.text
    assert "nothing was saved" in refused.json()["detail"]
    again = api.post("/api/companies", json={"name": "Studio"}, headers=admin_headers)
    assert again.status_code == 201, again.text
