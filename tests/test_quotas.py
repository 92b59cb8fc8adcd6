"""Per-company quotas: past each one the API answers 429 with Retry-After and says which quota, its
limit and what to do; under it the request goes through, and a refusal leaves nothing stored."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from arv.db.models import ARContent, Job, JobStatus, Portrait, UploadCount, Video
from arv.db.session import get_sessionmaker, session_scope
from tests.conftest import Tenant, apply_env
from tests.support.images import mp4_bytes, photo_jpeg

JPEG = photo_jpeg(320, 240)
VIDEO = mp4_bytes(seed=1)


def stored_files(env: dict[str, str]) -> list[Path]:
    root = Path(env["ARV_DATA_DIR"]) / "storage"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")] if root.exists() else []


def count(model: Any) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def jobs_finish() -> None:
    """Every queued or running job is done, as if the workers had caught up."""
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            .values(status=JobStatus.SUCCEEDED)
        )


def set_quotas(
    api: TestClient, admin: dict[str, str], company_id: int, **quotas: int | None
) -> dict[str, Any]:
    response = api.patch(
        f"/api/companies/{company_id}", json={f"quota_{k}": v for k, v in quotas.items()}, headers=admin
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def usage(api: TestClient, tenant: Tenant) -> dict[str, Any]:
    response = api.get(f"/api/companies/{tenant.company_id}/usage", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def upload_portrait(api: TestClient, tenant: Tenant, data: bytes = JPEG) -> httpx.Response:
    return api.post(
        "/api/portraits/upload", files={"file": ("p.jpg", data, "image/jpeg")}, headers=tenant.headers
    )


def create_content(
    api: TestClient, tenant: Tenant, project_id: int, *, video: bool = False
) -> httpx.Response:
    files: dict[str, tuple[str, bytes, str]] = {"image": ("a.jpg", JPEG, "image/jpeg")}
    if video:
        files["video"] = ("v.mp4", VIDEO, "video/mp4")
    return api.post(
        "/api/ar-content",
        data={"project_id": str(project_id), "title": "Wedding"},
        files=files,
        headers=tenant.headers,
    )


def upload_video(api: TestClient, tenant: Tenant, content_id: int) -> httpx.Response:
    return api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": ("v.mp4", VIDEO, "video/mp4")},
        headers=tenant.headers,
    )


def new_project(api: TestClient, tenant: Tenant) -> int:
    response = api.post("/api/projects", json={"name": "Prints"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def assert_refused(response: httpx.Response, quota: str, limit: int) -> int:
    """The answer is 429 for `quota` at `limit`; returns its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["quota"] == quota and body["limit"] == limit
    assert str(limit) in body["detail"] or quota == "stored_bytes"
    retry_after = int(response.headers["Retry-After"])
    assert retry_after == body["retry_after_s"] > 0
    return retry_after


def test_uploads_past_the_daily_quota_are_refused_until_the_next_utc_midnight(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str], arv_env: dict[str, str]
) -> None:
    set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=3)
    project = new_project(api, tenant)
    assert upload_portrait(api, tenant).status_code == 201
    content = create_content(api, tenant, project)
    assert content.status_code == 201, content.text
    assert upload_video(api, tenant, content.json()["id"]).status_code == 201
    files_before = len(stored_files(arv_env))

    for refused in (
        upload_portrait(api, tenant),
        create_content(api, tenant, project, video=True),
        upload_video(api, tenant, content.json()["id"]),
    ):
        retry_after = assert_refused(refused, "uploads_per_day", 3)
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        assert abs(retry_after - (midnight - now).total_seconds()) < 5
        assert "uploads today" in refused.json()["detail"] and "midnight UTC" in refused.json()["detail"]

    assert len(stored_files(arv_env)) == files_before
    assert (count(Portrait), count(ARContent), count(Video)) == (1, 1, 1)
    assert usage(api, tenant)["uploads_per_day"] == {"limit": 3, "used": 3, "overridden": True}


def test_the_daily_quota_renews_at_the_next_utc_midnight() -> None:
    from arv.services.quotas import seconds_until_next_utc_midnight

    assert seconds_until_next_utc_midnight(datetime(2026, 3, 1, 0, 0, tzinfo=UTC)) == 86400
    assert seconds_until_next_utc_midnight(datetime(2026, 3, 1, 23, 59, 59, 500000, tzinfo=UTC)) == 1
    # A clock in another zone: still UTC's midnight (22:30 in UTC+3 is 19:30 UTC).
    moscow = timezone(timedelta(hours=3))
    assert seconds_until_next_utc_midnight(datetime(2026, 3, 1, 22, 30, tzinfo=moscow)) == 4 * 3600 + 1800


def test_yesterdays_uploads_do_not_count_today(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=1)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    with session_scope() as session:
        session.add(UploadCount(company_id=tenant.company_id, day=yesterday, count=1))
    assert upload_portrait(api, tenant).status_code == 201
    assert_refused(upload_portrait(api, tenant), "uploads_per_day", 1)


def test_the_company_override_beats_the_setting_and_null_restores_it(
    tenant: Tenant, admin_headers: dict[str, str], arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_env({**arv_env, "ARV_QUOTA_UPLOADS_PER_DAY": "2"}, monkeypatch)
    from arv.api.app import create_app

    with TestClient(create_app()) as api:
        assert usage(api, tenant)["uploads_per_day"] == {"limit": 2, "used": 0, "overridden": False}
        company = set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=3)
        assert company["quota_uploads_per_day"] == 3
        for _ in range(3):
            assert upload_portrait(api, tenant).status_code == 201
        assert_refused(upload_portrait(api, tenant), "uploads_per_day", 3)

        company = set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=None)
        assert company["quota_uploads_per_day"] is None
        assert usage(api, tenant)["uploads_per_day"] == {"limit": 2, "used": 3, "overridden": False}
        assert_refused(upload_portrait(api, tenant), "uploads_per_day", 2)

        # 0 is unlimited, for the setting and for a company alike.
        set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=0)
        assert usage(api, tenant)["uploads_per_day"] == {"limit": None, "used": 3, "overridden": True}
        assert upload_portrait(api, tenant).status_code == 201


def test_compiles_in_flight_past_the_quota_are_refused_and_accepted_once_some_finish(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str], arv_env: dict[str, str]
) -> None:
    set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=2)
    project = new_project(api, tenant)
    assert upload_portrait(api, tenant).status_code == 201
    assert create_content(api, tenant, project).status_code == 201
    files_before = len(stored_files(arv_env))

    retry_after = assert_refused(upload_portrait(api, tenant), "compiles_in_flight", 2)
    assert retry_after <= 60
    assert "compiles" in upload_portrait(api, tenant).json()["detail"]
    assert_refused(create_content(api, tenant, project), "compiles_in_flight", 2)
    assert len(stored_files(arv_env)) == files_before
    assert usage(api, tenant)["compiles_in_flight"] == {"limit": 2, "used": 2, "overridden": True}
    # A refused upload is not counted against the day.
    assert usage(api, tenant)["uploads_per_day"]["used"] == 2

    jobs_finish()
    assert upload_portrait(api, tenant).status_code == 201


def test_the_21st_generate_marker_with_the_default_limit_of_20_is_refused(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=0)  # room to set the scene
    project = new_project(api, tenant)
    contents, task_ids = [], []
    for _ in range(21):
        created = create_content(api, tenant, project)
        assert created.status_code == 201, created.text
        contents.append(created.json()["id"])
        task_ids.append(created.json()["task_id"])
    jobs_finish()
    set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=None)
    assert usage(api, tenant)["compiles_in_flight"] == {"limit": 20, "used": 0, "overridden": False}

    accepted = [
        api.post(f"/api/ar-content/{c}/generate-marker", headers=tenant.headers) for c in contents[:20]
    ]
    assert [r.status_code for r in accepted] == [202] * 20
    jobs_before = count(Job)
    assert_refused(
        api.post(f"/api/ar-content/{contents[20]}/generate-marker", headers=tenant.headers),
        "compiles_in_flight",
        20,
    )
    assert count(Job) == jobs_before
    # The refused request left the content as it was: its last compile is still the one it names.
    last = api.get(f"/api/ar-content/{contents[20]}", headers=tenant.headers).json()["task_id"]
    assert last == task_ids[20]


def test_generate_marker_while_the_compile_is_still_queued_answers_that_compile(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=1)
    content = create_content(api, tenant, new_project(api, tenant)).json()
    jobs_before = count(Job)
    again = api.post(f"/api/ar-content/{content['id']}/generate-marker", headers=tenant.headers)
    # At the quota, and still accepted: nothing new is queued.
    assert again.status_code == 202, again.text
    assert again.json()["task_id"] == content["task_id"]
    assert count(Job) == jobs_before

    # Once that compile runs, a new request is a new compile, and counts against the quota.
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == content["task_id"]).values(status=JobStatus.RUNNING))
    assert_refused(
        api.post(f"/api/ar-content/{content['id']}/generate-marker", headers=tenant.headers),
        "compiles_in_flight",
        1,
    )
    set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=2)
    newer = api.post(f"/api/ar-content/{content['id']}/generate-marker", headers=tenant.headers)
    assert newer.status_code == 202 and newer.json()["task_id"] != content["task_id"]


def test_video_processing_past_the_transcodes_quota_is_refused(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str], arv_env: dict[str, str]
) -> None:
    set_quotas(api, admin_headers, tenant.company_id, transcodes_in_flight=1)
    project = new_project(api, tenant)
    content = create_content(api, tenant, project, video=True)
    assert content.status_code == 201, content.text
    files_before = len(stored_files(arv_env))

    retry_after = assert_refused(upload_video(api, tenant, content.json()["id"]), "transcodes_in_flight", 1)
    assert retry_after <= 60
    assert_refused(create_content(api, tenant, project, video=True), "transcodes_in_flight", 1)
    assert len(stored_files(arv_env)) == files_before
    # Content without a video has no ffmpeg work: the transcodes quota does not apply to it.
    assert create_content(api, tenant, project).status_code == 201
    assert usage(api, tenant)["transcodes_in_flight"] == {"limit": 1, "used": 1, "overridden": True}

    jobs_finish()
    assert upload_video(api, tenant, content.json()["id"]).status_code == 201


def test_an_upload_past_the_storage_quota_is_refused_and_stores_nothing(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str], arv_env: dict[str, str]
) -> None:
    room = 2 * len(JPEG) + len(VIDEO)
    set_quotas(api, admin_headers, tenant.company_id, stored_bytes=room)
    project = new_project(api, tenant)
    assert upload_portrait(api, tenant).status_code == 201
    content = create_content(api, tenant, project, video=True)
    assert content.status_code == 201, content.text
    assert usage(api, tenant)["stored_bytes"] == {"limit": room, "used": room, "overridden": True}
    files_before = len(stored_files(arv_env))

    for refused in (
        upload_portrait(api, tenant),
        create_content(api, tenant, project),
        upload_video(api, tenant, content.json()["id"]),
    ):
        assert assert_refused(refused, "stored_bytes", room) >= 3600
        assert "Delete" in refused.json()["detail"]
    assert len(stored_files(arv_env)) == files_before
    assert (count(Portrait), count(ARContent), count(Video)) == (1, 1, 1)

    set_quotas(api, admin_headers, tenant.company_id, stored_bytes=room + len(JPEG))
    assert upload_portrait(api, tenant).status_code == 201


def test_each_image_upload_records_its_size(api: TestClient, tenant: Tenant) -> None:
    assert upload_portrait(api, tenant).status_code == 201
    assert create_content(api, tenant, new_project(api, tenant)).status_code == 201
    with session_scope() as session:
        assert session.scalars(select(Portrait.image_size_bytes)).all() == [len(JPEG)]
        assert session.scalars(select(ARContent.image_size_bytes)).all() == [len(JPEG)]


def test_only_the_operator_sets_quotas_and_only_within_bounds(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str], make_tenant: Any
) -> None:
    path = f"/api/companies/{tenant.company_id}"
    assert api.patch(path, json={"quota_uploads_per_day": 5}, headers=tenant.headers).status_code == 403
    for bad in (
        {"quota_uploads_per_day": -1},
        {"quota_compiles_in_flight": 10**6},
        {"quota_stored_bytes": 2**63},
        {"quota_transcodes_in_flight": "many"},
        {"name": "renamed"},
    ):
        response = api.patch(path, json=bad, headers=admin_headers)
        assert response.status_code == 422, (bad, response.text)
    assert api.patch("/api/companies/999999", json={}, headers=admin_headers).status_code == 404

    set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=5, stored_bytes=10**9)
    # A field left out stays as it is.
    company = set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=3)
    assert (company["quota_uploads_per_day"], company["quota_compiles_in_flight"]) == (5, 3)
    assert company["quota_stored_bytes"] == 10**9

    other = make_tenant("Another Studio")
    assert api.get(f"/api/companies/{tenant.company_id}/usage", headers=other.headers).status_code == 404
    assert api.get(f"/api/companies/{tenant.company_id}/usage", headers=admin_headers).status_code == 200


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_two_uploads_at_the_daily_limit_in_separate_sessions_do_not_both_pass(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    from arv.config import get_settings
    from arv.services import markers, quotas

    set_quotas(api, admin_headers, tenant.company_id, uploads_per_day=1)
    both_admitted = threading.Barrier(2)
    outcomes: list[str] = []

    def upload() -> None:
        session = get_sessionmaker()()
        try:
            admitted = quotas.admit_upload(
                session,
                tenant.company_id,
                get_settings(),
                size_bytes=10,
                kinds=[markers.COMPILE_PORTRAIT_MARKER],
            )
            both_admitted.wait(timeout=30)  # each passed the early check: the day's count was 0
            session.add(
                Portrait(
                    company_id=tenant.company_id,
                    image_key=f"images/{threading.get_ident()}.jpg",
                    image_content_type="image/jpeg",
                    image_width=1,
                    image_height=1,
                    image_size_bytes=10,
                )
            )
            admitted.confirm()
            session.commit()
            outcomes.append("accepted")
        except quotas.QuotaExceeded as exc:
            session.rollback()
            outcomes.append(exc.quota)
        finally:
            session.close()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["accepted", "uploads_per_day"]
    assert count(Portrait) == 1
    with session_scope() as session:
        assert session.scalars(select(UploadCount.count)).all() == [1]


@pytest.mark.parametrize("db_backend", ["postgresql"])
@pytest.mark.parametrize("quota", ["uploads_per_day", "compiles_in_flight", "stored_bytes"])
def test_concurrent_uploads_through_the_api_pass_exactly_up_to_the_limit_and_leave_no_orphan(
    quota: str, api: TestClient, tenant: Tenant, admin_headers: dict[str, str], arv_env: dict[str, str]
) -> None:
    # Room for two uploads on the quota under test.
    set_quotas(
        api, admin_headers, tenant.company_id, **{quota: 2 * len(JPEG) if quota == "stored_bytes" else 2}
    )
    start = threading.Barrier(6)
    statuses: list[int] = []

    def upload() -> None:
        start.wait(timeout=30)
        statuses.append(upload_portrait(api, tenant).status_code)

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [201, 201, 429, 429, 429, 429]
    assert count(Portrait) == 2
    assert len(stored_files(arv_env)) == 2


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_concurrent_re_compiles_pass_exactly_up_to_the_compile_quota(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    project = new_project(api, tenant)
    contents = [create_content(api, tenant, project).json()["id"] for _ in range(6)]
    jobs_finish()
    set_quotas(api, admin_headers, tenant.company_id, compiles_in_flight=2)
    start = threading.Barrier(6)
    statuses: list[int] = []

    def recompile(content_id: int) -> None:
        start.wait(timeout=30)
        response = api.post(f"/api/ar-content/{content_id}/generate-marker", headers=tenant.headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=recompile, args=(c,)) for c in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [202, 202, 429, 429, 429, 429]
    assert usage(api, tenant)["compiles_in_flight"]["used"] == 2
