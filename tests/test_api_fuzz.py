"""Schemathesis against the app's own OpenAPI schema, every operation, on SQLite and PostgreSQL:
no answer is a server error, none breaks the schema. `benchmarks/api_fuzz.py` runs it longer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import apply_env
from tests.support.fuzz import FUZZ_ENV, fuzz, seed_records

# Per operation and mode (data fitting the schema, data breaking it): kept small for `make test`.
EXAMPLES = 30


@pytest.fixture
def fuzzed_api(arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    apply_env(FUZZ_ENV, monkeypatch)
    from arv.api.app import create_app

    with TestClient(create_app()) as client:
        yield client


@pytest.mark.slow
def test_every_operation_answers_within_its_schema_and_never_5xx(fuzzed_api: TestClient) -> None:
    seeded = seed_records(fuzzed_api)
    report = fuzz(fuzzed_api.app, seeded, examples=EXAMPLES)  # type: ignore[arg-type]
    print(report.table())
    assert report.operations, "the schema lists no operation"
    assert report.calls >= len(report.operations) * EXAMPLES
    assert (report.server_errors, report.nonconforming) == (0, 0), "\n\n".join(report.failures)
