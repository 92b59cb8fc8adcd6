"""QR codes, thumbnails and video posters: queued with the upload, made by default-queue tasks, served."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from arv.db.models import Job, Video
from arv.db.session import session_scope
from arv.tasks.app import task_routes
from tests.conftest import Tenant
from tests.support.camera_feed import playable_video
from tests.support.images import encode, mp4_bytes, photo, photo_jpeg
from tests.support.viewer import create_content, run_queued


def _decode_qr(png: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    # OpenCV's older QRCodeDetector misses about 3 codes in 100 of this size that the ArUco-based one
    # (and a phone) reads: 9 of 300 random content URLs, against 0 of 300.
    text, points, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    assert points is not None, "OpenCV found no QR code in the PNG"
    return str(text)


def test_content_creation_queues_its_qr_code_and_thumbnail_in_the_same_transaction(
    api: TestClient, tenant: Tenant
) -> None:
    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    with session_scope() as session:
        kinds = sorted(session.scalars(select(Job.kind).where(Job.company_id == tenant.company_id)))
    assert kinds == sorted(
        [
            "generate_ar_content_marker_task",
            "generate_qr_code",
            "generate_thumbnail",
            "generate_video_poster",
            "transcode_video",
        ]
    )
    previews = ("generate_qr_code", "generate_thumbnail", "generate_video_poster")
    assert {task_routes()[k]["queue"] for k in previews} == {"default"}
    pending = api.get(f"/api/ar-content/{created['id']}/qr.png", headers=tenant.headers)
    assert pending.status_code == 404 and "still being made" in pending.json()["detail"]


def test_the_qr_code_decodes_to_the_content_public_url(
    api: TestClient, tenant: Tenant, make_tenant, arv_env: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    created = create_content(api, tenant, photo_jpeg(320, 240), None)
    [result] = run_queued("generate_qr_code")
    expected = f"{arv_env['ARV_PUBLIC_BASE_URL']}/ar/{created['unique_id']}"
    assert result["url"] == expected == created["public_url"]

    png = api.get(f"/api/ar-content/{created['id']}/qr.png", headers=tenant.headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert _decode_qr(png.content) == expected

    svg = api.get(f"/api/ar-content/{created['id']}/qr.svg", headers=tenant.headers)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text

    # Running the job again (a redelivery) changes nothing.
    assert run_queued("generate_qr_code") == []
    other = make_tenant("Another Studio")
    for kind in ("png", "svg"):
        assert api.get(f"/api/ar-content/{created['id']}/qr.{kind}", headers=other.headers).status_code == 404


def test_portrait_and_content_images_get_small_upright_thumbnails(api: TestClient, tenant: Tenant) -> None:
    # A portrait photo stored sideways with an EXIF tag saying "rotate": the thumbnail stands upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = encode(photo(800, 600), "JPEG", quality=90, exif=exif.tobytes())
    portrait = api.post(
        "/api/portraits/upload", files={"file": ("p.jpg", sideways, "image/jpeg")}, headers=tenant.headers
    ).json()
    content = create_content(api, tenant, photo_jpeg(1200, 900), None)
    results = run_queued("generate_thumbnail")
    assert len(results) == 2 and all("thumbnail_key" in r for r in results)

    thumb = api.get(f"/api/portraits/{portrait['id']}/thumbnail.jpg", headers=tenant.headers)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (240, 320)
    thumb = api.get(f"/api/ar-content/{content['id']}/thumbnail.jpg", headers=tenant.headers)
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 240)


def test_a_video_gets_a_poster_frame(api: TestClient, tenant: Tenant, tmp_path: Path) -> None:
    created = create_content(
        api, tenant, photo_jpeg(320, 240), playable_video(tmp_path / "v.mp4", container="mp4"),
        video_type="video/mp4",
    )  # fmt: skip
    [result] = run_queued("generate_video_poster")
    assert "poster_key" in result
    poster_path = f"/api/ar-content/{created['id']}/videos/{created['active_video_id']}/poster.jpg"
    poster = api.get(poster_path, headers=tenant.headers)
    assert poster.status_code == 200
    frame = np.asarray(Image.open(io.BytesIO(poster.content)).convert("RGB"))
    assert frame.shape == (240, 320, 3)
    assert frame.std() > 20  # ffmpeg's test pattern, not a black frame


def test_a_video_ffmpeg_cannot_read_fails_with_a_clear_reason(api: TestClient, tenant: Tenant) -> None:
    # Uploads are probed whole, so the stored object is damaged afterwards: an MP4 header and nothing
    # playable, as a storage fault or a half-restored backup would leave it.
    from arv.storage import get_storage

    created = create_content(api, tenant, photo_jpeg(320, 240), mp4_bytes(), video_type="video/mp4")
    with session_scope() as session:
        stored = session.get(Video, created["active_video_id"])
        assert stored is not None
        get_storage().put(stored.storage_key, mp4_bytes()[:40] + bytes(4096), "video/mp4")
    [result] = run_queued("generate_video_poster")
    assert "cannot be read by ffmpeg" in result["failed"]
    with session_scope() as session:
        video = session.get(Video, created["active_video_id"])
        assert video is not None and video.poster_key is None
        assert video.poster_error and "cannot be read by ffmpeg" in video.poster_error
    poster_path = f"/api/ar-content/{created['id']}/videos/{created['active_video_id']}/poster.jpg"
    poster = api.get(poster_path, headers=tenant.headers)
    assert poster.status_code == 422 and "cannot be read by ffmpeg" in poster.json()["detail"]


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_ffmpeg_past_its_time_limit_counts_as_an_unreadable_video(
    api: TestClient, tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arv.config import get_settings

    monkeypatch.setattr(get_settings(), "poster_timeout_s", 0.001)
    video = playable_video(tmp_path / "v.mp4", container="mp4")
    create_content(api, tenant, photo_jpeg(320, 240), video, video_type="video/mp4")
    [result] = run_queued("generate_video_poster")
    assert "within 0.001 s" in result["failed"]


def test_a_thumbnail_that_cannot_be_made_says_why(api: TestClient, tenant: Tenant) -> None:
    from arv.db.models import ARContent
    from arv.storage import get_storage

    content = create_content(api, tenant, photo_jpeg(320, 240), None)
    path = f"/api/ar-content/{content['id']}/thumbnail.jpg"
    assert api.get(path, headers=tenant.headers).status_code == 404
    with session_scope() as session:
        record = session.get(ARContent, content["id"])
        assert record is not None
        get_storage().delete(record.image_key)
    [result] = run_queued("generate_thumbnail")
    assert "missing from storage" in result["failed"]
    answer = api.get(path, headers=tenant.headers)
    assert answer.status_code == 422 and "missing from storage" in answer.json()["detail"]
