"""Schemathesis against the app's own OpenAPI schema, longer than the test in `make test`: every
operation, data that fits the schema and data that breaks it, with the admin key, a company's key
and none, on SQLite and on PostgreSQL, in this process (the app over ASGI) with seeded records.

Prints per operation the calls, the 5xx answers, the answers that break the schema (or their
declared content type) and the statuses seen, then the totals; exits 1 on any 5xx or
nonconforming answer, listing the first ones with a command that repeats each.

    .venv/bin/python -m benchmarks.api_fuzz [--examples 200] [--backend sqlite|postgresql|both] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fuzz import FUZZ_ENV, FuzzReport, fuzz, seed_records  # noqa: E402
from tests.support.platform import reset_caches  # noqa: E402
from tests.support.servers import postgres_database  # noqa: E402


def run_backend(backend: str, examples: int, seed: int) -> FuzzReport:
    from contextlib import ExitStack

    from fastapi.testclient import TestClient

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arv-bench-fuzz-")))
        env = {
            "ARV_DATA_DIR": str(workdir / "data"),
            "ARV_LOG_LEVEL": "ERROR",
            "ARV_JSON_LOGS": "true",
            "ARV_SECRET_KEY": "bench-fuzz-secret",
            "ARV_PUBLIC_BASE_URL": "http://testserver",
            **FUZZ_ENV,
        }
        if backend == "postgresql":
            env["ARV_DATABASE_URL"] = stack.enter_context(postgres_database("arv_bench_fuzz"))
        for name in [n for n in os.environ if n.startswith("ARV_")]:
            del os.environ[name]
        os.environ.update(env)
        reset_caches()
        from arv.api.app import create_app
        from arv.db.migrate import upgrade_database

        upgrade_database()
        with TestClient(create_app()) as api:
            seeded = seed_records(api)
            report = fuzz(api.app, seeded, examples=examples, seed=seed)  # type: ignore[arg-type]
        reset_caches()
        return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=200, help="requests per operation and mode")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (the run is derandomized)")
    args = parser.parse_args()

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    bad = 0
    for backend in backends:
        report = run_backend(backend, args.examples, args.seed)
        print(f"\n== {backend}: {args.examples} examples per operation and mode ==")
        print(report.table())
        if report.without_negative:
            print("no schema-breaking data to send:", ", ".join(report.without_negative))
        for failure in report.failures:
            print("\n" + failure)
        bad += report.server_errors + report.nonconforming
    print(f"\n5xx or nonconforming answers, all backends: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
