"""Bad uploads are refused at the door with a clear 4xx, and nothing is written anywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from arv.db.models import ARContent, Job, Portrait, Video
from arv.db.session import session_scope
from tests.conftest import Tenant
from tests.support import videos
from tests.support.images import encode, mp4_bytes, photo, photo_jpeg, png_bomb


def stored_files(env: dict[str, str]) -> list[Path]:
    root = Path(env["ARV_DATA_DIR"]) / "storage"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")] if root.exists() else []


def row_counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            m.__tablename__: session.scalar(select(func.count()).select_from(m)) or 0
            for m in (Portrait, ARContent, Video, Job)
        }


JPEG = photo_jpeg(320, 240)
BAD_IMAGES = {
    "empty": (b"", 400, "empty"),
    "truncated": (JPEG[: len(JPEG) // 2], 400, "truncated"),
    "text under an image name": (b"hello, this is not a photo\n" * 20, 415, "not an image"),
    "svg": (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        415,
        "SVG",
    ),
    "decompression bomb": (png_bomb(), 413, "pixels"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_portrait_upload_is_refused_and_writes_nothing(
    case: str, api: TestClient, tenant: Tenant, arv_env: dict[str, str]
) -> None:
    data, status, words = BAD_IMAGES[case]
    response = api.post(
        "/api/portraits/upload", files={"file": ("photo.jpg", data, "image/jpeg")}, headers=tenant.headers
    )
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["detail"].lower()
    assert stored_files(arv_env) == []
    assert row_counts() == {"portraits": 0, "ar_contents": 0, "videos": 0, "jobs": 0}


def test_upload_over_the_size_limit_is_refused_with_413(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import apply_env

    apply_env({**arv_env, "ARV_MAX_UPLOAD_MB": "1"}, monkeypatch)
    from arv.api.app import create_app

    with TestClient(create_app()) as small_api:
        big = encode(photo(2000, 2000, seed=3), "PNG")
        assert len(big) > 2 * 1024 * 1024
        response = small_api.post(
            "/api/portraits/upload", files={"file": ("big.png", big, "image/png")}, headers=tenant.headers
        )
    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]
    assert stored_files(arv_env) == []
    assert row_counts()["portraits"] == 0


@pytest.mark.parametrize(
    ("name", "make_video", "content_type", "code", "words"),
    [
        ("v.mp4", lambda: b"not a video at all" * 100, "video/mp4", 415, "video"),
        ("v.webm", lambda: videos.webm_declaring(100_000, 100_000), "video/webm", 413, "100000 x 100000"),
    ],
    ids=["not a video", "a video declaring 100000 x 100000 pixels"],
)
def test_ar_content_with_a_bad_video_writes_neither_image_nor_video(
    api: TestClient,
    tenant: Tenant,
    arv_env: dict[str, str],
    name: str,
    make_video: Callable[[], bytes],
    content_type: str,
    code: int,
    words: str,
) -> None:
    project = api.post("/api/projects", json={"name": "P"}, headers=tenant.headers).json()
    response = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "T"},
        files={"image": ("a.jpg", JPEG, "image/jpeg"), "video": (name, make_video(), content_type)},
        headers=tenant.headers,
    )
    assert response.status_code == code, response.text
    assert words in response.json()["detail"]
    assert stored_files(arv_env) == []
    assert row_counts() == {"portraits": 0, "ar_contents": 0, "videos": 0, "jobs": 0}


def test_good_upload_is_stored_with_a_queued_job(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str]
) -> None:
    response = api.post(
        "/api/portraits/upload", files={"file": ("p.jpg", JPEG, "image/jpeg")}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["marker_status"] == "pending" and body["task_id"]
    assert len(stored_files(arv_env)) == 1
    task = api.get(f"/api/tasks/{body['task_id']}", headers=tenant.headers).json()
    assert task["state"] == "PENDING"


def test_video_is_recognised_by_its_container_not_its_name(api: TestClient, tenant: Tenant) -> None:
    project = api.post("/api/projects", json={"name": "P"}, headers=tenant.headers).json()
    content = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "T"},
        files={"image": ("a.jpg", JPEG, "image/jpeg")},
        headers=tenant.headers,
    ).json()
    accepted = api.post(
        f"/api/ar-content/{content['id']}/videos",
        files={"video": ("clip.bin", mp4_bytes(), "application/octet-stream")},
        headers=tenant.headers,
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["content_type"] == "video/mp4"
    refused = api.post(
        f"/api/ar-content/{content['id']}/videos",
        files={"video": ("clip.mp4", JPEG, "video/mp4")},
        headers=tenant.headers,
    )
    assert refused.status_code == 415
    assert (
        api.get(f"/api/ar-content/{content['id']}", headers=tenant.headers).json()["active_video_id"]
        == accepted.json()["id"]
    )
