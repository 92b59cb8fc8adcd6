"""Fuzzing the API against its own OpenAPI schema with Schemathesis, in this process.

`seed_records` makes what an operator and a studio have after a first session (a company with a
key, a project, a portrait, AR content with an image and a video, their thumbnails, QR code and
poster, a notification, a sweep run); `fuzz` then sends every operation of the schema data that
fits it and data that does not, with the admin key, the company's key or none, with random ids or
the seeded ones, and counts the answers that are server errors or break the schema.

Nothing here names a route: a new operation is fuzzed as soon as the app has it, and its path
parameters and body fields get the seeded ids of the same name (`content_id`, `project_id`, ...)
half of the time.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from arv.db.models import Job, JobStatus
from arv.db.session import session_scope
from arv.services.auth import create_key
from arv.services.notify.outbox import create_notification
from tests.support.images import mp4_bytes, photo_jpeg
from tests.support.jobs import run_job_here

# Settings of a fuzzed app: the seed's one sweep counts as recent for the whole run, as with a worker
# up (else /healthz rightly answers 503 a few intervals in).
FUZZ_ENV = {"ARV_SWEEP_INTERVAL_S": "3600"}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Jobs the seed runs so that previews and QR codes exist (a marker compile takes longer and is
# not needed for any answer's shape).
SEED_JOB_KINDS = ("generate_thumbnail", "generate_video_poster", "generate_qr_code")


@dataclass
class Seeded:
    """The keys and the ids of the seeded records, by the names path parameters use."""

    admin_key: str
    company_key: str
    ids: dict[str, Any]

    def headers(self, who: str) -> dict[str, str]:
        key = {"admin": self.admin_key, "company": self.company_key}.get(who)
        return {"Authorization": f"Bearer {key}"} if key else {}


def seed_records(api: TestClient) -> Seeded:
    """Seed through the API (and the job runners, in this process) what the fuzz reaches by id."""
    from arv.config import get_settings
    from arv.jobs.queues import QUEUES
    from arv.jobs.sweep import offer_to_sweep

    with session_scope() as session:
        admin_key = create_key(session, admin=True)
    admin = {"Authorization": f"Bearer {admin_key}"}
    company = api.post(
        "/api/companies",
        json={"name": "Fuzz Studio", "contact_email": "studio@fuzz.test", "telegram_chat_id": "-100123"},
        headers=admin,
    )
    assert company.status_code == 201, company.text
    company_id = company.json()["id"]
    with session_scope() as session:
        company_key = create_key(session, company_id=company_id)
    h = {"Authorization": f"Bearer {company_key}"}
    project = api.post(
        "/api/projects", json={"name": "Album", "expires_at": "2030-01-31T00:00:00Z"}, headers=h
    ).json()
    jpeg = photo_jpeg(200, 160)
    portrait = api.post("/api/portraits/upload", files={"file": ("p.jpg", jpeg, "image/jpeg")}, headers=h)
    assert portrait.status_code == 201, portrait.text
    content = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "Summer"},
        files={"image": ("a.jpg", jpeg, "image/jpeg"), "video": ("v.mp4", mp4_bytes(), "video/mp4")},
        headers=h,
    )
    assert content.status_code == 201, content.text
    second = api.post(
        f"/api/ar-content/{content.json()['id']}/videos",
        files={"video": ("w.mp4", mp4_bytes(), "video/mp4")},
        headers=h,
    )
    assert second.status_code == 201, second.text
    with session_scope() as session:
        queued = [
            job.id
            for job in session.query(Job).filter(Job.status == JobStatus.QUEUED, Job.kind.in_(SEED_JOB_KINDS))
        ]
    for job_id in queued:
        run_job_here(job_id)
    with session_scope() as session:
        notification = create_notification(
            session,
            company_id=company_id,
            notification_type="expiry_warning",
            dedupe_key=f"fuzz-{company_id}",
            project_id=project["id"],
            payload={"project_name": project["name"], "expires_at": project["expires_at"]},
        )
        assert notification is not None
        notification_id = notification.id
    # A sweep has run, as with a worker up: /healthz answers 200.
    offer_to_sweep(get_settings(), lambda: dict.fromkeys(QUEUES, 0))
    body = content.json()
    return Seeded(
        admin_key=admin_key,
        company_key=company_key,
        ids={
            "company_id": company_id,
            "project_id": project["id"],
            "portrait_id": portrait.json()["id"],
            "content_id": body["id"],
            "ar_content_id": body["id"],
            "video_id": body["active_video_id"],
            "notification_id": notification_id,
            "task_id": body["task_id"],
            "unique_id": body["unique_id"],
        },
    )


@dataclass
class OperationCounts:
    calls: int = 0
    server_errors: int = 0
    nonconforming: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass
class FuzzReport:
    operations: dict[str, OperationCounts] = field(default_factory=dict)
    # The first few failures, each as the check's words and a command that repeats the request.
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Operations with nothing to send that does not fit their schema.
    without_negative: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(o.calls for o in self.operations.values())

    @property
    def server_errors(self) -> int:
        return sum(o.server_errors for o in self.operations.values())

    @property
    def nonconforming(self) -> int:
        return sum(o.nonconforming for o in self.operations.values())

    def table(self) -> str:
        width = max((len(name) for name in self.operations), default=10)
        lines = [f"{'operation':<{width}}  calls  5xx  nonconforming  statuses"]
        for name, counts in sorted(self.operations.items()):
            statuses = " ".join(f"{code}:{n}" for code, n in sorted(counts.statuses.items()))
            figures = f"{counts.calls:5}  {counts.server_errors:3}  {counts.nonconforming:13}"
            lines.append(f"{name:<{width}}  {figures}  {statuses}")
        lines.append(
            f"{'total':<{width}}  {self.calls:5}  {self.server_errors:3}  {self.nonconforming:13}"
            f"  ({len(self.operations)} operations, {self.seconds:.1f} s)"
        )
        return "\n".join(lines)


def fuzz(
    app: FastAPI, seeded: Seeded, *, examples: int, seed: int = 0, keep_failures: int = 20
) -> FuzzReport:
    """Send `examples` generated requests per operation and mode (fitting the schema, and not) and
    check each answer: not a 5xx, its body as the schema says, its content type as declared."""
    report = FuzzReport()
    started = time.perf_counter()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as client:
        operations = [result.ok() for result in schema.get_all_operations()]
        # Deletions last, so the seeded records (and keys) serve every other operation first.
        for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
            name = f"{operation.method.upper()} {operation.path}"
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                target = _Target(name, mode, report, seeded, client, keep_failures)
                try:
                    _fuzz_one(operation, target, examples=examples, seed=seed)
                except hypothesis.errors.Unsatisfiable:
                    # Nothing in this operation can break the schema (no parameters, no body).
                    if mode is GenerationMode.POSITIVE:
                        raise
                    report.without_negative.append(name)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Target:
    """One operation in one mode, and where its answers are counted."""

    name: str
    mode: GenerationMode
    report: FuzzReport
    seeded: Seeded
    client: Any
    keep_failures: int

    @property
    def counts(self) -> OperationCounts:
        return self.report.operations.setdefault(self.name, OperationCounts())

    def failed(self, who: str, words: str) -> None:
        if len(self.report.failures) < self.keep_failures:
            self.report.failures.append(f"{self.name} ({self.mode.value}, {who} key): {words}")

    def send(self, case: Any, who: str, real: bool) -> None:
        if real:
            # The seeded ids wherever a parameter or a body field has their name.
            for values in (case.path_parameters, case.query, case.body):
                if isinstance(values, dict):
                    for param in values.keys() & self.seeded.ids.keys():
                        values[param] = self.seeded.ids[param]
        headers = self.seeded.headers(who)
        counts = self.counts
        counts.calls += 1
        try:
            response = case.call(session=self.client, headers=headers)
        except Exception as exc:  # noqa: BLE001 - the app raised: a 500 to any client
            counts.server_errors += 1
            counts.statuses[500] += 1
            self.failed(
                who, f"raised {type(exc).__name__}: {exc}\n" + "\n".join(getattr(exc, "__notes__", []))
            )
            return
        counts.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            if response.status_code >= 500:
                counts.server_errors += 1
            else:
                counts.nonconforming += 1
            self.failed(who, f"\n{group}")


def _fuzz_one(operation: Any, target: _Target, *, examples: int, seed: int) -> None:
    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @given(
        case=operation.as_strategy(generation_mode=target.mode),
        who=st.sampled_from(("company", "admin", "none")),
        real=st.booleans(),
    )
    @hypothesis.seed(seed)
    def run(case: Any, who: str, real: bool) -> None:
        target.send(case, who, real)

    run()
