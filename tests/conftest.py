"""Fixtures shared by the whole suite: an ARV environment per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.support.platform import reset_caches
from tests.support.servers import REDIS_URL, moto_s3_server, postgres_database

# Tests never read the developer's own ARV_ variables.
for _name in [n for n in os.environ if n.startswith("ARV_") and not n.startswith("ARV_TEST_")]:
    del os.environ[_name]


# The files that take a minute or more of `make test` (the CI run of 1054 s: setup and call of their
# tests). xdist deals files out to its two processes in collection order: these go first, so the
# hundreds of short tests fill in at the end instead of one process running a long file alone while
# the other has nothing left. (Its own order puts the files with fewest tests, these among them, last.)
# The fault suite times recoveries against 30 s bounds and mostly waits: it comes first, and the files
# after it that also mostly wait on processes they start run beside it on the other process, before
# the ones that keep cores busy (the fuzz, the browsers, MindAR's two Node.js processes).
# A file missing here only runs later; a stale order costs balance, not results.
LONGEST_FILES_FIRST = [
    "tests/test_fault_suite.py",
    "tests/test_transcode_faults.py",
    "tests/test_platform_run.py",
    "tests/test_tasks_cli.py",
    "tests/test_hardening.py",
    "tests/test_api_fuzz.py",
    "tests/test_video_playback.py",
    "tests/mindar/test_real_client_agrees.py",
    "tests/test_viewer_browser.py",
    "tests/test_console_browser.py",
    "tests/test_pipeline.py",
    "tests/test_pipeline_faults.py",
    "tests/test_transcode.py",
    "tests/test_image_memory.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the long files' tests first, in LONGEST_FILES_FIRST's order, the rest as collected
    (pyproject's addopts turn xdist's own reordering off so that this order is the one dealt out)."""
    rank = {path: i for i, path in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for this run; tests empty it before use."""
    from arv.db.migrate import upgrade_database

    with postgres_database() as url:
        upgrade_database(url.replace("postgresql://", "postgresql+psycopg://"))
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def _empty_postgres(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname='public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def video_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the run's generated video inputs (tests/support/video_matrix.py): each is made
    once a run, whichever test asks first (make_input reuses a file made)."""
    return tmp_path_factory.mktemp("video-inputs")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def arv_env(
    db_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """ARV_ variables for one test (embedded broker and local storage unless the test overrides),
    set in this process and returned for subprocesses; the database is migrated and empty."""
    env = {
        "ARV_DATA_DIR": str(tmp_path / "data"),
        "ARV_JSON_LOGS": "true",
        "ARV_LOG_LEVEL": "WARNING",
        "ARV_SECRET_KEY": "test-secret",
        "ARV_PUBLIC_BASE_URL": "http://testserver",
        # Console passwords hashed at a low argon2 cost: no test is about the cost, and each sign-in
        # would take 0.4 s at the production one.
        "ARV_CONSOLE_PASSWORD_MEMORY_KIB": "1024",
        "ARV_CONSOLE_PASSWORD_PASSES": "1",
        # Markers compiled with MindAR's own keyframes, the product's default, said here so that no
        # environment of the machine changes it. Training (ARV_MARKER_TRAINING=true) is tested end to
        # end in tests/test_pipeline.py, tests/test_viewer_browser.py and tests/mindar/.
        "ARV_MARKER_TRAINING": "false",
    }
    if db_backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
        env["ARV_DATABASE_URL"] = url
    if request.node.get_closest_marker("production_stack"):
        # Redis broker and result backend under a key prefix of this test's own, S3 on a moto server.
        prefix = f"arvtest-{uuid.uuid4().hex[:10]}:"
        env.update(
            {
                "ARV_BROKER_URL": REDIS_URL,
                "ARV_RESULT_BACKEND": REDIS_URL,
                "ARV_REDIS_KEY_PREFIX": prefix,
                "ARV_STORAGE_URL": f"s3://arv-{uuid.uuid4().hex[:12]}",
                "ARV_S3_ENDPOINT": request.getfixturevalue("s3_endpoint"),
                "ARV_S3_ACCESS_KEY": "testing",
                "ARV_S3_SECRET_KEY": "testing",
            }
        )
    apply_env(env, monkeypatch)
    if db_backend == "sqlite":
        from arv.db.migrate import upgrade_database

        upgrade_database()
    yield env
    reset_caches()


def apply_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Set `env` in this process and forget every object built from the old settings."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()


@pytest.fixture
def api(arv_env: dict[str, str]) -> Iterator[TestClient]:
    from arv.api.app import create_app

    with TestClient(create_app()) as client:
        yield client


@dataclass
class Tenant:
    company_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def admin_key(arv_env: dict[str, str]) -> str:
    from arv.db.session import session_scope
    from arv.services.auth import create_key

    with session_scope() as session:
        return create_key(session, admin=True)


@pytest.fixture
def admin_headers(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture
def make_tenant(api: TestClient, admin_headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """Creates a company through the API and a key for it."""
    from arv.db.session import session_scope
    from arv.services.auth import create_key

    def make(name: str = "Studio", **fields: object) -> Tenant:
        response = api.post("/api/companies", json={"name": name, **fields}, headers=admin_headers)
        assert response.status_code == 201, response.text
        company_id = response.json()["id"]
        with session_scope() as session:
            key = create_key(session, company_id=company_id)
        return Tenant(company_id, key)

    return make


@pytest.fixture
def tenant(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant("Photo Studio One", contact_email="owner@photostudio.com")
