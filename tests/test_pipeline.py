"""End to end through real parts: upload -> ready -> the .mind downloads -> MindAR's matcher finds it.

Runs on the embedded default (SQLite, filesystem broker, local folder) and on the production stack
(PostgreSQL, Redis, an S3 server), with real Celery worker processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from arv.db.models import ARContent, MarkerStatus, Portrait
from arv.db.session import session_scope
from arv.mindar.mindfile import decode_mind
from tests.conftest import Tenant
from tests.support.camera_views import corners_within, views_of_target
from tests.support.images import mp4_bytes
from tests.support.jobs import run_job_here
from tests.support.mindar_client import locate
from tests.support.pipeline import as_rgb, download, target_photo, wait_for_marker
from tests.support.platform import worker_pool


def _upload_to_detection(api: TestClient, tenant: Tenant, env: dict[str, str], tmp_path: Path) -> None:
    photo = target_photo()
    # Training on (ARV_MARKER_TRAINING=true): the worker trains the marker (the suite's others do not).
    with worker_pool({**env, "ARV_MARKER_TRAINING": "true"}, tmp_path) as pool:
        pool.start("markers,default", concurrency=1)
        project = api.post("/api/projects", json={"name": "Prints"}, headers=tenant.headers).json()
        created = api.post(
            "/api/ar-content",
            data={"project_id": str(project["id"]), "title": "Portrait"},
            files={"image": ("p.jpg", photo, "image/jpeg"), "video": ("v.mp4", mp4_bytes(), "video/mp4")},
            headers=tenant.headers,
        )
        assert created.status_code == 201, created.text
        content = wait_for_marker(api, f"/api/ar-content/{created.json()['id']}", tenant.headers)
    assert content["marker_status"] == "ready", content["marker_error"]
    assert content["marker_metadata"]["verdict"] and content["marker_metadata"]["trained"] is True
    task = api.get(f"/api/tasks/{created.json()['task_id']}", headers=tenant.headers).json()
    assert task["state"] == "SUCCESS" and task["attempts"] == 1

    mind = download(api, content["marker_url"])
    assert len(decode_mind(mind)) == 1
    views = [
        v
        for v in views_of_target(as_rgb(photo))
        if v.name in ("face-on", "tilted-forward", "rotated-45", "noisy-dim", "cluttered-off-centre")
    ]
    detections = locate(mind, [v.frame for v in views])
    found = [
        v.name
        for v, d in zip(views, detections, strict=True)
        if d is not None and corners_within(d.corners, v.target_corners)
    ]
    assert len(found) >= 4, f"MindAR located the target only in {found}"


@pytest.mark.node
@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_embedded_default_upload_becomes_a_marker_mindar_finds(
    db_backend: str, arv_env: dict[str, str], api: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    _upload_to_detection(api, tenant, arv_env, tmp_path)


@pytest.mark.node
@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_production_stack_upload_becomes_a_marker_mindar_finds(
    db_backend: str, arv_env: dict[str, str], api: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    _upload_to_detection(api, tenant, arv_env, tmp_path)


def test_an_image_that_cannot_be_a_marker_fails_at_once_with_the_reason(
    arv_env: dict[str, str], api: TestClient, tenant: Tenant
) -> None:
    from PIL import Image

    from tests.support.images import encode

    blank = encode(Image.new("RGB", (640, 480), (200, 200, 200)), "PNG")
    body = api.post(
        "/api/portraits/upload", files={"file": ("blank.png", blank, "image/png")}, headers=tenant.headers
    ).json()
    run_job_here(body["task_id"])
    portrait = api.get(f"/api/portraits/{body['id']}", headers=tenant.headers).json()
    assert portrait["marker_status"] == "failed"
    assert portrait["marker_error"] and portrait["marker_url"] is None
    task = api.get(f"/api/tasks/{body['task_id']}", headers=tenant.headers).json()
    assert task["state"] == "FAILURE" and task["attempts"] == 1


def compiled_content(api: TestClient, tenant: Tenant) -> dict:  # type: ignore[type-arg]
    """AR content made through the API, its first marker compiled in this process."""
    project = api.post("/api/projects", json={"name": "P"}, headers=tenant.headers).json()
    created = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "T"},
        files={"image": ("p.jpg", target_photo(), "image/jpeg")},
        headers=tenant.headers,
    ).json()
    run_job_here(created["task_id"])
    return created  # type: ignore[no-any-return]


def test_recompile_keeps_serving_the_old_marker_until_the_new_one_is_ready(
    arv_env: dict[str, str], api: TestClient, tenant: Tenant
) -> None:
    created = compiled_content(api, tenant)
    first = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    assert first["marker_status"] == "ready"

    again = api.post(f"/api/ar-content/{created['id']}/generate-marker", headers=tenant.headers)
    assert again.status_code == 202
    pending = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    assert pending["marker_status"] == "pending"
    first_marker = download(api, first["marker_url"])
    assert download(api, pending["marker_url"]) == first_marker

    run_job_here(again.json()["task_id"])
    second = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    assert second["marker_status"] == "ready"
    # Same image, deterministic compiler: same bytes under a new key; the old object is gone.
    assert second["marker_url"] != first["marker_url"]
    assert download(api, second["marker_url"]) == first_marker
    assert api.get(first["marker_url"]).status_code == 404
    with session_scope() as session:
        stuck = session.scalar(
            select(func.count())
            .select_from(ARContent)
            .where(ARContent.marker_status == MarkerStatus.PROCESSING)
        )
        assert stuck == 0 and session.scalar(select(func.count()).select_from(Portrait)) == 0


def test_a_compile_superseded_while_it_ran_keeps_the_served_marker_and_deletes_its_own(
    arv_env: dict[str, str], api: TestClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arv.storage import get_storage

    created = compiled_content(api, tenant)
    served = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    first = api.post(f"/api/ar-content/{created['id']}/generate-marker", headers=tenant.headers).json()

    # While the first re-compile writes its marker, a second re-compile is requested.
    storage = get_storage()
    real_put = storage.put
    second: dict[str, str] = {}

    def put_then_request_another(key: str, data: bytes, content_type: str) -> None:
        real_put(key, data, content_type)
        if key.endswith(".mind") and not second:
            second.update(
                api.post(f"/api/ar-content/{created['id']}/generate-marker", headers=tenant.headers).json()
            )

    monkeypatch.setattr(storage, "put", put_then_request_another)
    assert run_job_here(first["task_id"])["superseded"] is True  # type: ignore[index]
    monkeypatch.setattr(storage, "put", real_put)

    still = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    assert still["marker_status"] == "pending"
    assert download(api, still["marker_url"]) == download(api, served["marker_url"])  # still served
    assert not storage.exists(f"markers/{first['task_id']}.mind")  # its own output went
    run_job_here(second["task_id"])
    final = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    assert final["marker_status"] == "ready" and api.get(final["marker_url"]).status_code == 200
    markers = {o.key for o in storage.list_objects("markers/")}
    assert markers == {f"markers/{second['task_id']}.mind"}
