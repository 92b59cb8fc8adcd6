"""Deletion that erases: rows, jobs and every storage object of a deleted record, on SQLite and
PostgreSQL, a local folder and an S3 server; the 410 of a deleted content's page; the listings."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from arv.config import get_settings
from arv.db.models import (
    ARContent,
    Base,
    Company,
    DeletedContent,
    Job,
    JobStatus,
    Notification,
    NotificationDelivery,
    Video,
)
from arv.db.session import get_engine, get_sessionmaker, session_scope
from arv.jobs import store
from arv.jobs.kinds import kind_named
from arv.jobs.runner import RunAgain, _settle_success
from arv.services import deletion
from arv.services.deletion import ERASE_OBJECTS, without_video
from arv.services.notify.outbox import create_notification
from arv.storage import get_storage
from tests.conftest import Tenant, apply_env
from tests.support.camera_feed import playable_video
from tests.support.images import mp4_bytes, photo_jpeg
from tests.support.jobs import run_job_here
from tests.support.platform import wait_until, worker_pool
from tests.support.viewer import create_content, queued_jobs, run_queued

# Every kind of job that derives an object from an upload, as the upload queues them.
DERIVING = (
    "generate_ar_content_marker_task",
    "generate_thumbnail",
    "generate_video_poster",
    "generate_qr_code",
    "transcode_video",
)
# Tables whose rows outlive a content or a project: the company, its key, the ids of deleted content.
KEPT_TABLES = {"companies", "api_keys", "upload_counts", "deleted_contents", "jobs", "task_runs"}


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "local")


@pytest.fixture
def api(
    arv_env: dict[str, str], store_kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The app on this test's database, its objects in a local folder or in a fresh bucket of the moto
    S3 server."""
    if store_kind == "s3":
        apply_env(
            {
                "ARV_STORAGE_URL": f"s3://arv-del-{uuid.uuid4().hex[:12]}",
                "ARV_S3_ENDPOINT": request.getfixturevalue("s3_endpoint"),
                "ARV_S3_ACCESS_KEY": "testing",
                "ARV_S3_SECRET_KEY": "testing",
            },
            monkeypatch,
        )
    from arv.api.app import create_app

    with TestClient(create_app()) as client:
        yield client


def stored_keys() -> list[str]:
    return [stored.key for stored in get_storage().list_objects(limit=100_000)]


def row_counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def jobs_left() -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(kind, status) for kind, status in session.execute(select(Job.kind, Job.status))]


def run_erasure() -> list[dict[str, Any] | RunAgain]:
    """Run the queued erase jobs as a worker would; each must have erased."""
    results = [run_job_here(job_id) for job_id in queued_jobs(ERASE_OBJECTS.name)]
    assert results and all(isinstance(r, dict) and "erased" in r for r in results), results
    return results


def upload_video(api: TestClient, tenant: Tenant, content_id: int, data: bytes) -> int:
    response = api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": ("clip.mp4", data, "video/mp4")},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def content_with_everything(api: TestClient, tenant: Tenant, tmp_path: Path) -> dict[str, Any]:
    """A content with two playable videos, a rotation over them, a notification (with its e-mail
    delivery), a counted view, and every derived object made by its jobs."""
    clip = playable_video(tmp_path / "clip.mp4", seconds=1.0, container="mp4")
    created = create_content(api, tenant, photo_jpeg(480, 360, seed=3), clip, video_type="video/mp4")
    second = upload_video(api, tenant, created["id"], clip)
    rotation = api.put(
        f"/api/ar-content/{created['id']}/rotation",
        json={"rotation_type": "daily", "video_sequence": [created["active_video_id"], second]},
        headers=tenant.headers,
    )
    assert rotation.status_code == 200, rotation.text
    for kind in DERIVING:
        results = run_queued(kind)
        assert results and all("failed" not in r and "superseded" not in r for r in results), (kind, results)
    with session_scope() as session:
        create_notification(
            session,
            company_id=tenant.company_id,
            notification_type="marker_failed",
            dedupe_key=f"deletion-test-{created['id']}",
            project_id=created["project_id"],
            ar_content_id=created["id"],
            payload={"reason": "a test", "job_id": "x"},
        )
        content = session.get(ARContent, created["id"])
        assert content is not None
        assert content.marker_key and content.thumbnail_key and content.qr_png_key and content.qr_svg_key
        videos = list(session.scalars(select(Video).where(Video.ar_content_id == content.id)))
        assert len(videos) == 2 and all(video.poster_key for video in videos)
    assert api.get(f"/api/ar/{created['unique_id']}").status_code == 200  # one view counted
    return {**created, "second_video_id": second}


# ---- acceptance 3 ------------------------------------------------------------------------------


@pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)
def test_deleting_a_project_leaves_no_object_and_no_row_of_it(
    api: TestClient, tenant: Tenant, tmp_path: Path, store_kind: str
) -> None:
    created = content_with_everything(api, tenant, tmp_path)
    # The image, the marker, the thumbnail, two videos with a poster and a rendition each, the QR
    # code's PNG and SVG.
    assert len(stored_keys()) == 11, stored_keys()
    assert len([key for key in stored_keys() if key.startswith("renditions/")]) == 2
    counts = row_counts()
    for table in ("ar_contents", "videos", "video_rotation_schedules", "content_views", "notifications"):
        assert counts[table] >= 1, table
    assert counts["notification_deliveries"] == 1

    response = api.delete(f"/api/projects/{created['project_id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    run_erasure()

    assert stored_keys() == []
    left = {table: n for table, n in row_counts().items() if n and table not in KEPT_TABLES}
    assert left == {}
    # Of the jobs, only the erasure's own remain; the content's compile, previews, QR code and e-mail
    # went with it.
    assert {kind for kind, _ in jobs_left()} == {ERASE_OBJECTS.name}
    assert all(status == JobStatus.SUCCEEDED for _, status in jobs_left())
    assert api.get(f"/api/projects/{created['project_id']}", headers=tenant.headers).status_code == 404
    assert api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 404


def test_deleting_one_content_leaves_the_others_objects(api: TestClient, tenant: Tenant) -> None:
    doomed = create_content(api, tenant, photo_jpeg(320, 240, seed=1), mp4_bytes(), video_type="video/mp4")
    kept = create_content(api, tenant, photo_jpeg(320, 240, seed=2), mp4_bytes(), video_type="video/mp4")
    portrait = api.post(
        "/api/portraits/upload",
        files={"file": ("p.jpg", photo_jpeg(200, 200), "image/jpeg")},
        headers=tenant.headers,
    ).json()
    run_queued("generate_qr_code")
    run_queued("generate_thumbnail")
    before = set(stored_keys())

    assert api.delete(f"/api/ar-content/{doomed['id']}", headers=tenant.headers).status_code == 204
    run_erasure()
    with session_scope() as session:
        kept_row = session.get(ARContent, kept["id"])
        assert kept_row is not None
        kept_keys = {kept_row.image_key, kept_row.thumbnail_key, kept_row.qr_png_key, kept_row.qr_svg_key}
    assert kept_keys <= set(stored_keys()) and len(stored_keys()) < len(before)
    assert api.get(f"/api/ar-content/{kept['id']}", headers=tenant.headers).status_code == 200
    assert api.get(f"/api/portraits/{portrait['id']}", headers=tenant.headers).status_code == 200

    # The portrait goes with its photo and thumbnail.
    assert api.delete(f"/api/portraits/{portrait['id']}", headers=tenant.headers).status_code == 204
    run_erasure()
    assert api.get(f"/api/portraits/{portrait['id']}", headers=tenant.headers).status_code == 404
    with session_scope() as session:
        kept_row = session.get(ARContent, kept["id"])
        assert kept_row is not None
        videos = list(session.scalars(select(Video.storage_key).where(Video.ar_content_id == kept_row.id)))
    assert set(stored_keys()) == kept_keys | set(videos)


def test_a_portraits_notifications_go_with_it(api: TestClient, tenant: Tenant) -> None:
    portraits = [
        api.post(
            "/api/portraits/upload",
            files={"file": ("p.jpg", photo_jpeg(64, 64, seed=i), "image/jpeg")},
            headers=tenant.headers,
        ).json()["id"]
        for i in range(2)
    ]
    with session_scope() as session:
        for portrait_id in portraits:
            create_notification(
                session,
                company_id=tenant.company_id,
                notification_type="marker_failed",
                dedupe_key=f"portrait-{portrait_id}",
                payload={"reason": "too plain", "portrait_id": portrait_id},
            )
    assert len(api.get("/api/notifications", headers=tenant.headers).json()) == 2
    assert api.delete(f"/api/portraits/{portraits[0]}", headers=tenant.headers).status_code == 204
    left = api.get("/api/notifications", headers=tenant.headers).json()
    assert [n["id"] for n in left] and all(n["deliveries"] for n in left)
    with session_scope() as session:
        payloads = [n.payload for n in session.scalars(select(Notification))]
        deliveries = session.scalar(select(func.count()).select_from(NotificationDelivery))
    assert [(p["reason"], p["portrait_id"]) for p in payloads] == [("too plain", portraits[1])]
    assert deliveries == 1
    # The e-mail of the deleted portrait's notification is not sent: its job went too.
    assert [kind for kind, _ in jobs_left()].count("deliver_notification") == 1


# ---- the public page -----------------------------------------------------------------------------


def test_a_deleted_contents_page_answers_410_in_the_readers_language(api: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant = make_tenant("Фотостудия", language="ru")
    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    assert api.delete(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 204

    # Nothing of the content is left to say whose it was: the page speaks the reader's language.
    page = api.get(f"/ar/{created['unique_id']}", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert page.status_code == 410
    assert 'data-state="error"' in page.text and 'data-reason="deleted"' in page.text
    assert "Больше недоступно" in page.text
    # A plain page: no AR script, so nothing asks for the camera.
    assert "viewer.js" not in page.text and "arv-config" not in page.text
    answer = api.get(f"/api/ar/{created['unique_id']}")
    assert answer.status_code == 410
    assert answer.json()["state"] == "deleted" and "no longer available" in answer.json()["detail"]
    with session_scope() as session:
        assert session.get(DeletedContent, created["unique_id"]) is not None
    # An id that never existed is still unknown.
    assert api.get(f"/api/ar/{uuid.uuid4()}").status_code == 404


def test_the_deleted_state_has_words_in_every_language() -> None:
    from arv.viewer.messages import LANGUAGES
    from arv.viewer.page import render_viewer

    for language in LANGUAGES:
        html = render_viewer(state="error", reason="deleted", language=language, unique_id="x")
        assert 'data-for="deleted"' in html and "{{" not in html


def test_two_deletions_of_one_content_at_once_both_end_well(api: TestClient, tenant: Tenant) -> None:
    """The second waits for the first's locks, then finds nothing left to delete: no error, one
    `deleted_contents` row."""
    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with session_scope() as session:
                content = session.get(ARContent, created["id"])
                if content is not None:  # on SQLite the first's write lock makes it wait until it is gone
                    deletion.delete_ar_content(session, content)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = get_sessionmaker()()
    try:
        content = first.get(ARContent, created["id"])
        assert content is not None
        deletion.delete_ar_content(first, content)
        racing = threading.Thread(target=second)
        racing.start()
        time.sleep(0.5)
        first.commit()
    finally:
        first.close()
    racing.join(timeout=30)
    assert not racing.is_alive() and errors == []
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(DeletedContent)) == 1
    run_erasure()
    assert stored_keys() == []


# ---- who may delete ------------------------------------------------------------------------------


def test_another_companys_records_cannot_be_deleted(api: TestClient, make_tenant, admin_headers) -> None:  # type: ignore[no-untyped-def]
    owner, intruder = make_tenant("A"), make_tenant("B")
    created = create_content(api, owner, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    portrait = api.post(
        "/api/portraits/upload",
        files={"file": ("p.jpg", photo_jpeg(200, 200), "image/jpeg")},
        headers=owner.headers,
    ).json()
    paths = [
        f"/api/ar-content/{created['id']}/videos/{created['active_video_id']}",
        f"/api/ar-content/{created['id']}",
        f"/api/portraits/{portrait['id']}",
        f"/api/projects/{created['project_id']}",
        f"/api/companies/{owner.company_id}",
    ]
    for path in paths:
        response = api.delete(path, headers=intruder.headers)
        assert response.status_code == 404, (path, response.status_code)
        assert "there is no" in response.json()["detail"] or "has no video" in response.json()["detail"]
    # A company may not delete itself: that is the operator's.
    own = api.delete(f"/api/companies/{owner.company_id}", headers=owner.headers)
    assert own.status_code == 403 and "operator" in own.json()["detail"]
    assert api.get(f"/api/ar-content/{created['id']}", headers=owner.headers).status_code == 200
    assert api.get(f"/api/portraits/{portrait['id']}", headers=owner.headers).status_code == 200
    # A video of another content of the same company is not this content's.
    other = create_content(api, owner, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    crossed = api.delete(
        f"/api/ar-content/{created['id']}/videos/{other['active_video_id']}", headers=owner.headers
    )
    assert crossed.status_code == 404
    # Ids outside the database's integers are refused, not a server error.
    for path in ("/api/projects/2147483648", "/api/ar-content/0", "/api/companies/-1"):
        assert api.delete(path, headers=admin_headers).status_code == 422, path
    assert api.delete("/api/companies/2147483647", headers=admin_headers).status_code == 404


def test_the_operator_deletes_a_company_with_everything_it_has(
    api: TestClient, tenant: Tenant, make_tenant, admin_headers: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    other = make_tenant("Other Studio")
    theirs = create_content(api, other, photo_jpeg(320, 240, seed=9), None)
    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    api.post(
        "/api/portraits/upload",
        files={"file": ("p.jpg", photo_jpeg(200, 200), "image/jpeg")},
        headers=tenant.headers,
    )
    with session_scope() as session:
        create_notification(
            session,
            company_id=tenant.company_id,
            notification_type="expiry_warning",
            dedupe_key="deletion-company-test",
            project_id=created["project_id"],
            payload={"project_name": "Prints", "expires_at": "2030-01-01T00:00:00+00:00"},
        )
    for kind in ("generate_thumbnail", "generate_qr_code"):
        run_queued(kind)
    with session_scope() as session:
        row = session.get(ARContent, theirs["id"])
        assert row is not None
        others_keys = {row.image_key, row.thumbnail_key, row.qr_png_key, row.qr_svg_key}
    # And the deleted company's: an image, a video, a portrait, their two thumbnails, a QR code.
    assert len(stored_keys()) == 4 + 7
    assert others_keys < set(stored_keys())

    response = api.delete(f"/api/companies/{tenant.company_id}", headers=admin_headers)
    assert response.status_code == 204, response.text
    run_erasure()

    # What is left in storage is the other company's (its image, thumbnail and QR code).
    assert set(stored_keys()) == others_keys and len(others_keys) == 4
    # Its key no longer opens anything.
    assert api.get("/api/projects", headers=tenant.headers).status_code == 401
    with session_scope() as session:
        for table in Base.metadata.sorted_tables:
            if "company_id" in table.c:
                count = session.scalar(
                    select(func.count()).select_from(table).where(table.c.company_id == tenant.company_id)
                )
                assert count == 0, table.name
    counts = row_counts()
    assert counts["ar_contents"] == 1 and counts["videos"] == 0 and counts["notification_deliveries"] == 0
    assert api.get(f"/api/ar/{created['unique_id']}").status_code == 410
    assert api.get(f"/api/ar-content/{theirs['id']}", headers=other.headers).status_code == 200


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_company_deletion_relies_on_no_cascade_of_the_database(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    """With SQLite's foreign keys switched off (no ON DELETE CASCADE, no SET NULL), every row still goes."""
    from sqlalchemy.orm import Session

    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    upload_video(api, tenant, created["id"], mp4_bytes())
    api.put(
        f"/api/ar-content/{created['id']}/rotation",
        json={"rotation_type": "daily", "video_sequence": [created["active_video_id"]]},
        headers=tenant.headers,
    )
    with session_scope() as session:
        create_notification(
            session,
            company_id=tenant.company_id,
            notification_type="marker_failed",
            dedupe_key="no-cascade",
            ar_content_id=created["id"],
            payload={"reason": "a test", "job_id": "x"},
        )
    connection = get_engine().connect()
    try:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
        connection.rollback()
        with Session(bind=connection) as session:
            company = session.get(Company, tenant.company_id)
            assert company is not None
            deletion.delete_company(session, company)
            session.commit()
    finally:
        connection.invalidate()  # not back into the pool with its foreign keys off
        connection.close()
    left = {table: n for table, n in row_counts().items() if n and table not in {"jobs", "deleted_contents"}}
    assert left == {"api_keys": 1}  # the operator's
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.company_id.is_not(None))) == 0


# ---- videos and rotation -------------------------------------------------------------------------


def test_deleting_the_playing_video_switches_the_content_and_fixes_its_rotation(
    api: TestClient, tenant: Tenant
) -> None:
    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    cid, v1 = created["id"], created["active_video_id"]
    v2 = upload_video(api, tenant, cid, mp4_bytes())
    v3 = upload_video(api, tenant, cid, mp4_bytes())
    sequence = [v1, v2, v3]
    set_rotation = api.put(
        f"/api/ar-content/{cid}/rotation",
        json={"rotation_type": "daily", "video_sequence": sequence},
        headers=tenant.headers,
    )
    assert set_rotation.status_code == 200
    # The rotation moves on to v2.
    with session_scope() as session:
        content = session.get(ARContent, cid)
        assert content is not None
        content.active_video_id = v2
        from arv.db.models import VideoRotationSchedule

        schedule = session.scalars(select(VideoRotationSchedule)).one()
        schedule.current_index = 1

    def rotation() -> dict[str, Any]:
        return api.get(f"/api/ar-content/{cid}/rotation", headers=tenant.headers).json()  # type: ignore[no-any-return]

    def active() -> int | None:
        return api.get(f"/api/ar-content/{cid}", headers=tenant.headers).json()["active_video_id"]  # type: ignore[no-any-return]

    assert api.delete(f"/api/ar-content/{cid}/videos/{v2}", headers=tenant.headers).status_code == 204
    assert active() == v3
    assert (rotation()["video_sequence"], rotation()["current_index"]) == ([v1, v3], 1)

    assert api.delete(f"/api/ar-content/{cid}/videos/{v1}", headers=tenant.headers).status_code == 204
    assert active() == v3
    assert (rotation()["video_sequence"], rotation()["current_index"]) == ([v3], 0)

    assert api.delete(f"/api/ar-content/{cid}/videos/{v3}", headers=tenant.headers).status_code == 204
    assert active() is None
    assert api.get(f"/api/ar-content/{cid}/rotation", headers=tenant.headers).status_code == 404
    assert api.get(f"/api/ar-content/{cid}/videos", headers=tenant.headers).json() == []
    # The videos' files and the posters' jobs went with them.
    run_erasure()
    with session_scope() as session:
        assert session.get(ARContent, cid) is not None
        assert (
            session.scalar(select(func.count()).select_from(Job).where(Job.kind == "generate_video_poster"))
            == 0
        )
    assert not [key for key in stored_keys() if key.startswith("videos/")]


def test_without_a_rotation_the_content_switches_to_its_earliest_other_video(
    api: TestClient, tenant: Tenant
) -> None:
    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    cid, first = created["id"], created["active_video_id"]
    second = upload_video(api, tenant, cid, mp4_bytes())
    third = upload_video(api, tenant, cid, mp4_bytes())
    assert api.delete(f"/api/ar-content/{cid}/videos/{second}", headers=tenant.headers).status_code == 204
    assert api.get(f"/api/ar-content/{cid}", headers=tenant.headers).json()["active_video_id"] == first
    assert api.delete(f"/api/ar-content/{cid}/videos/{first}", headers=tenant.headers).status_code == 204
    assert api.get(f"/api/ar-content/{cid}", headers=tenant.headers).json()["active_video_id"] == third


@pytest.mark.parametrize(
    ("sequence", "index", "video", "expected"),
    [
        ([1, 2, 3], 1, 2, ([1, 3], 1)),  # the playing one goes: the next one plays
        ([1, 2, 3], 2, 3, ([1, 2], 0)),  # the last one plays and goes: back to the start
        ([1, 2, 3], 2, 1, ([2, 3], 1)),  # an earlier one goes: the same video plays
        ([1, 2, 1, 3], 3, 1, ([2, 3], 1)),  # a video listed twice goes from every place
        ([4], 0, 4, ([], 0)),
        ([1, 2], 0, 9, ([1, 2], 0)),
    ],
)
def test_a_rotation_without_a_video_keeps_its_place(
    sequence: list[int], index: int, video: int, expected: tuple[list[int], int]
) -> None:
    assert without_video(sequence, index, video) == expected


# ---- jobs of deleted records -------------------------------------------------------------------


def test_jobs_that_finish_after_their_subject_was_deleted_leave_nothing(
    api: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    """A compile, a thumbnail, a poster, a transcode and a QR code that were running when their content
    was deleted: each writes its object, then finds its subject gone, records nothing and deletes what
    it wrote; the erasure then deletes their jobs."""
    clip = playable_video(tmp_path / "clip.mp4", seconds=1.0, container="mp4")
    created = create_content(api, tenant, photo_jpeg(480, 360, seed=5), clip, video_type="video/mp4")
    settings = get_settings()
    running = []
    with get_engine().connect() as connection, get_sessionmaker()(bind=connection) as session:
        for kind_name in DERIVING:
            [job_id] = queued_jobs(kind_name)
            kind = kind_named(kind_name)
            assert kind is not None
            job = store.claim(connection, job_id, lease_s=600)
            assert job is not None
            outcome = kind.run(session, job)
            session.commit()
            running.append((kind, job, outcome))
        # Every object is written; none is recorded yet.
        # image, video, and the five jobs' (QR: two; a clip this small gets one rendition)
        assert len(stored_keys()) == 2 + len(DERIVING) + 1

        assert api.delete(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 204
        with session_scope() as other:
            statuses = {j.kind: j.status for j in other.scalars(select(Job).where(Job.kind.in_(DERIVING)))}
        assert statuses == dict.fromkeys(DERIVING, JobStatus.RUNNING)  # left to end, not pulled away

        for kind, job, outcome in running:
            result = _settle_success(session, kind, job, outcome, kind.retry(settings))
            assert result.get("superseded") is True, (kind.name, result)
    run_erasure()
    assert stored_keys() == []
    assert {kind for kind, _ in jobs_left()} == {ERASE_OBJECTS.name}


def test_a_compile_queued_for_a_deleted_content_never_runs(api: TestClient, tenant: Tenant) -> None:
    created = create_content(api, tenant, photo_jpeg(320, 240), None)
    job_id = created["task_id"]
    assert api.delete(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 204
    with session_scope() as session:
        assert session.get(Job, job_id) is None
    with pytest.raises(AssertionError, match="there is no job"):
        run_job_here(job_id)
    run_erasure()
    assert stored_keys() == []


def test_an_erasure_waits_for_a_running_job_of_the_deleted_records(api: TestClient, tenant: Tenant) -> None:
    created = create_content(api, tenant, photo_jpeg(320, 240), None)
    [job_id] = queued_jobs("generate_qr_code")
    with get_engine().connect() as connection:
        assert store.claim(connection, job_id, lease_s=600) is not None
    assert api.delete(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 204
    results = [run_job_here(erase) for erase in queued_jobs(ERASE_OBJECTS.name)]
    # The batch of keys is done; the job waiting for the QR code's job to end is put back for later.
    [waiting] = [r for r in results if isinstance(r, RunAgain)]
    assert "still running" in waiting.reason
    assert [r for r in results if isinstance(r, dict) and r["erased"]] and stored_keys() == []
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.RUNNING
    # Once it has ended (here: failed), the waiting erasure deletes it.
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.FAILED
        waiting_job = session.scalars(
            select(Job).where(Job.kind == ERASE_OBJECTS.name, Job.status == JobStatus.QUEUED)
        ).one()
        waiting_job.available_at = waiting_job.created_at
    [done] = [run_job_here(erase) for erase in queued_jobs(ERASE_OBJECTS.name)]
    assert isinstance(done, dict) and done["jobs_deleted"] == 1
    with session_scope() as session:
        assert session.get(Job, job_id) is None


# ---- listings ------------------------------------------------------------------------------------


def page_through(api: TestClient, path: str, headers: dict[str, str], **params: Any) -> list[list[int]]:
    pages: list[list[int]] = []
    before: int | None = None
    while True:
        query = {**params, **({"before_id": before} if before else {})}
        response = api.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        ids = [item["id"] for item in response.json()]
        if not ids:
            return pages
        pages.append(ids)
        before = ids[-1]


def test_ar_content_is_listed_newest_first_page_by_page(
    api: TestClient, tenant: Tenant, make_tenant, admin_headers: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    made = [create_content(api, tenant, photo_jpeg(64, 64, seed=i), None) for i in range(5)]
    stranger = make_tenant("Stranger")
    theirs = create_content(api, stranger, photo_jpeg(64, 64), None)
    ids = sorted((c["id"] for c in made), reverse=True)

    assert page_through(api, "/api/ar-content", tenant.headers, limit=2) == [ids[:2], ids[2:4], ids[4:]]
    one_project = api.get(
        "/api/ar-content", params={"project_id": made[1]["project_id"]}, headers=tenant.headers
    )
    assert [c["id"] for c in one_project.json()] == [made[1]["id"]]
    assert one_project.json()[0]["public_url"].endswith(made[1]["unique_id"])
    foreign = api.get("/api/ar-content", params={"project_id": theirs["project_id"]}, headers=tenant.headers)
    assert foreign.status_code == 404
    # The operator sees every company's, or one company's.
    assert len(api.get("/api/ar-content", headers=admin_headers).json()) == 6
    only = api.get("/api/ar-content", params={"company_id": stranger.company_id}, headers=admin_headers)
    assert [c["id"] for c in only.json()] == [theirs["id"]]
    for bad in ({"limit": 0}, {"limit": 501}, {"before_id": 2**31}, {"project_id": 0}, {"company_id": -1}):
        assert api.get("/api/ar-content", params=bad, headers=tenant.headers).status_code == 422, bad


def test_portraits_and_videos_are_listed_page_by_page(api: TestClient, tenant: Tenant, make_tenant) -> None:  # type: ignore[no-untyped-def]
    portraits = [
        api.post(
            "/api/portraits/upload",
            files={"file": ("p.jpg", photo_jpeg(64, 64, seed=i), "image/jpeg")},
            headers=tenant.headers,
        ).json()["id"]
        for i in range(3)
    ]
    stranger = make_tenant("Stranger")
    api.post(
        "/api/portraits/upload",
        files={"file": ("p.jpg", photo_jpeg(64, 64), "image/jpeg")},
        headers=stranger.headers,
    )
    newest_first = sorted(portraits, reverse=True)
    assert page_through(api, "/api/portraits", tenant.headers, limit=2) == [
        newest_first[:2],
        newest_first[2:],
    ]

    created = create_content(api, tenant, photo_jpeg(64, 64), mp4_bytes(), video_type="video/mp4")
    videos = [
        created["active_video_id"],
        *(upload_video(api, tenant, created["id"], mp4_bytes()) for _ in range(2)),
    ]
    path = f"/api/ar-content/{created['id']}/videos"
    listed = api.get(path, headers=tenant.headers).json()
    assert isinstance(listed, list) and [v["id"] for v in listed] == sorted(videos, reverse=True)
    assert page_through(api, path, tenant.headers, limit=1) == [[v] for v in sorted(videos, reverse=True)]
    assert api.get(path, params={"limit": 1000}, headers=tenant.headers).status_code == 422
    assert api.get(path, headers=stranger.headers).status_code == 404


# ---- how fast, on the production stack ---------------------------------------------------------


@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_a_worker_erases_a_deleted_projects_objects_within_seconds(
    api: TestClient,
    tenant: Tenant,
    arv_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redis broker, S3 (moto), PostgreSQL and a real worker: the objects are gone seconds after the
    DELETE answers, with nothing run by hand."""
    clip = playable_video(tmp_path / "clip.mp4", seconds=1.0, container="mp4")
    created = create_content(api, tenant, photo_jpeg(480, 360, seed=4), clip, video_type="video/mp4")
    upload_video(api, tenant, created["id"], clip)
    with worker_pool(arv_env, tmp_path) as pool:
        pool.start()

        def derived() -> bool:
            with session_scope() as session:
                statuses = set(session.scalars(select(Job.status)))
            return statuses == {JobStatus.SUCCEEDED}

        wait_until(derived, timeout=120, what="every derived object")
        assert len(stored_keys()) == 11  # 9, and each video's rendition
        started = time.monotonic()
        assert api.delete(f"/api/projects/{created['project_id']}", headers=tenant.headers).status_code == 204
        wait_until(lambda: not stored_keys(), timeout=60, interval=0.05, what="the erasure")
        took = time.monotonic() - started
    with capsys.disabled():
        print(f"\n11 objects of a deleted project erased from S3 by a worker {took:.2f} s after the DELETE")
    assert took < 10
