"""The public viewer's endpoints: what the page gets for active, expired, unknown and unready content,
the views it counts, the page's words and files. (The AR itself: tests/test_viewer_browser.py.)"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from arv.db.models import ARContent, Project, utcnow
from arv.db.session import session_scope
from tests.conftest import Tenant
from tests.support.images import mp4_bytes, photo_jpeg
from tests.support.viewer import REFERENCE_MIND, create_content, place_marker, prepare_videos

PHOTO = photo_jpeg(400, 300)


def _ready_content(api: TestClient, tenant: Tenant) -> dict:  # type: ignore[type-arg]
    created = create_content(api, tenant, PHOTO, mp4_bytes(), video_type="video/mp4")
    place_marker(created["id"], REFERENCE_MIND.read_bytes())
    prepare_videos()
    return created


def test_active_content_gives_the_page_its_marker_video_and_target_shape(
    api: TestClient, tenant: Tenant
) -> None:
    created = _ready_content(api, tenant)
    answer = api.get(f"/api/ar/{created['unique_id']}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "active" and body["language"] == "en"
    assert body["video_content_type"] == "video/mp4"
    assert (body["target_width"], body["target_height"]) == (400, 300)
    # Local storage links are paths: the page fetches them from the origin it was opened on.
    assert body["marker_url"].startswith("/files/") and body["video_url"].startswith("/files/")
    assert api.get(body["marker_url"]).content == REFERENCE_MIND.read_bytes()
    # The page plays the web rendition, not the upload; the upload is kept.
    [video] = api.get(f"/api/ar-content/{created['id']}/videos", headers=tenant.headers).json()
    assert video["rendition_status"] == "ready" and video["original_kept"]
    assert api.get(body["video_url"]).content == api.get(video["rendition_url"]).content != mp4_bytes()
    assert api.get(video["video_url"]).content == mp4_bytes()
    assert answer.headers["cache-control"] == "no-store"


def test_each_load_of_active_content_counts_one_view_for_today(
    api: TestClient, tenant: Tenant, make_tenant
) -> None:  # type: ignore[no-untyped-def]
    created = _ready_content(api, tenant)
    for _ in range(3):
        assert api.get(f"/api/ar/{created['unique_id']}").status_code == 200
    views = api.get(f"/api/ar-content/{created['id']}/views", headers=tenant.headers).json()
    assert views == {
        "ar_content_id": created["id"],
        "total": 3,
        "days": [{"day": utcnow().date().isoformat(), "count": 3}],
    }
    other = make_tenant("Another Studio")
    assert api.get(f"/api/ar-content/{created['id']}/views", headers=other.headers).status_code == 404


def test_expired_content_answers_404_expired_and_its_page_never_asks_for_the_camera(
    api: TestClient, tenant: Tenant
) -> None:
    created = _ready_content(api, tenant)
    with session_scope() as session:
        session.execute(update(Project).values(status="expired"))
    answer = api.get(f"/api/ar/{created['unique_id']}")
    assert answer.status_code == 404
    assert answer.json()["state"] == "expired" and "expired" in answer.json()["detail"]
    page = api.get(f"/ar/{created['unique_id']}")
    assert page.status_code == 410
    assert 'data-state="expired"' in page.text and "This content has expired" in page.text
    assert "<script" not in page.text  # no MindAR, no getUserMedia
    views = api.get(f"/api/ar-content/{created['id']}/views", headers=tenant.headers).json()
    assert views["total"] == 0


def test_a_project_past_its_expiry_date_is_expired_before_the_periodic_pass_runs(
    api: TestClient, tenant: Tenant
) -> None:
    created = _ready_content(api, tenant)
    with session_scope() as session:
        session.execute(update(Project).values(expires_at=utcnow() - timedelta(minutes=1)))
    assert api.get(f"/api/ar/{created['unique_id']}").json()["state"] == "expired"


def test_switched_off_content_is_expired_to_the_viewer(api: TestClient, tenant: Tenant) -> None:
    created = _ready_content(api, tenant)
    with session_scope() as session:
        session.execute(update(ARContent).values(is_active=False))
    answer = api.get(f"/api/ar/{created['unique_id']}")
    assert answer.status_code == 404 and answer.json()["state"] == "expired"


def test_unknown_and_unready_content_are_told_apart(api: TestClient, tenant: Tenant) -> None:
    unknown = api.get("/api/ar/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and unknown.json()["state"] == "unknown"
    page = api.get("/ar/00000000-0000-0000-0000-000000000000")
    assert page.status_code == 404 and 'data-reason="unknown"' in page.text and "<script" not in page.text

    no_marker_yet = create_content(api, tenant, PHOTO, mp4_bytes(), video_type="video/mp4")
    answer = api.get(f"/api/ar/{no_marker_yet['unique_id']}")
    assert answer.status_code == 404 and answer.json()["state"] == "not_ready"
    assert "not ready" in answer.json()["detail"]
    assert 'data-reason="not_ready"' in api.get(f"/ar/{no_marker_yet['unique_id']}").text


def test_a_hostile_public_id_is_unknown_and_never_reaches_the_page_script(api: TestClient) -> None:
    page = api.get("/ar/%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert page.status_code == 404
    assert "alert(1)" not in page.text


def test_the_page_speaks_the_company_language(api: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    russian = make_tenant("Фотостудия", language="ru")
    created = _ready_content(api, russian)
    page = api.get(f"/ar/{created['unique_id']}")
    assert page.status_code == 200
    assert '<html lang="ru">' in page.text and "Наведите камеру на напечатанную фотографию" in page.text
    assert 'data-state="loading"' in page.text
    with session_scope() as session:
        session.execute(update(Project).values(status="expired"))
    assert "Срок действия истёк" in api.get(f"/ar/{created['unique_id']}").text


def test_unknown_content_page_follows_the_reader_language(api: TestClient) -> None:
    page = api.get("/ar/nothing-here", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"})
    assert "Здесь ничего нет" in page.text


def test_the_page_loads_its_libraries_from_the_api_compressed(api: TestClient, tenant: Tenant) -> None:
    created = _ready_content(api, tenant)
    page = api.get(f"/ar/{created['unique_id']}").text
    assert '"three": "/viewer/static/vendor/three/three.module.min.js"' in page
    library = api.get(
        "/viewer/static/vendor/mind-ar/mindar-image-three.prod.js", headers={"Accept-Encoding": "gzip"}
    )
    assert library.status_code == 200
    assert library.headers["content-encoding"] == "gzip"
    assert library.headers["content-type"].startswith("text/javascript")
    assert "MindARThree" in library.text  # httpx undoes the gzip


def test_only_the_viewer_files_are_served(api: TestClient) -> None:
    for path in ("../page.py", "..%2F..%2Fconfig.py", "../package.json", "vendor/nothing.js"):
        assert api.get(f"/viewer/static/{path}").status_code == 404


def test_a_cdn_base_url_moves_the_page_files(api: TestClient, tenant: Tenant, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from arv.config import get_settings

    created = _ready_content(api, tenant)
    monkeypatch.setattr(get_settings(), "viewer_cdn_base_url", "https://cdn.example.com/arv")
    page = api.get(f"/ar/{created['unique_id']}").text
    assert 'src="https://cdn.example.com/arv/viewer.js"' in page
    assert "https://cdn.example.com/arv/vendor/mind-ar/mindar-image-three.prod.js" in page


def test_the_next_load_plays_the_video_made_active_since_once_its_rendition_is_ready(
    api: TestClient, tenant: Tenant
) -> None:
    created = _ready_content(api, tenant)
    first = api.get(f"/api/ar/{created['unique_id']}").json()
    playing = api.get(first["video_url"]).content
    second = api.post(
        f"/api/ar-content/{created['id']}/videos",
        files={"video": ("second.mp4", mp4_bytes(seed=1), "video/mp4")},
        headers=tenant.headers,
    ).json()
    with session_scope() as session:
        session.execute(update(ARContent).values(active_video_id=second["id"]))
    # Its rendition is not made yet: the content keeps playing the video it had.
    meanwhile = api.get(f"/api/ar/{created['unique_id']}").json()
    assert meanwhile["state"] == "active" and api.get(meanwhile["video_url"]).content == playing
    prepare_videos()
    after = api.get(f"/api/ar/{created['unique_id']}").json()
    made = api.get(f"/api/ar-content/{created['id']}/videos", headers=tenant.headers).json()
    rendition = next(video["rendition_url"] for video in made if video["id"] == second["id"])
    assert api.get(after["video_url"]).content == api.get(rendition).content != playing


@pytest.mark.production_stack
@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_on_object_storage_the_page_gets_links_it_can_download(api: TestClient, tenant: Tenant) -> None:
    created = _ready_content(api, tenant)
    body = api.get(f"/api/ar/{created['unique_id']}").json()
    assert body["marker_url"].startswith("http") and "testserver" not in body["marker_url"]
    assert httpx.get(body["marker_url"], timeout=30).content == REFERENCE_MIND.read_bytes()
    [video] = api.get(f"/api/ar-content/{created['id']}/videos", headers=tenant.headers).json()
    rendition = httpx.get(video["rendition_url"], timeout=30).content
    assert httpx.get(body["video_url"], timeout=30).content == rendition and rendition[4:8] == b"ftyp"


def test_without_its_libraries_installed_the_page_says_it_cannot_start(
    api: TestClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from arv.viewer import assets

    created = _ready_content(api, tenant)
    monkeypatch.setattr(assets, "STATIC_DIR", tmp_path)
    page = api.get(f"/ar/{created['unique_id']}")
    assert page.status_code == 503
    assert 'data-state="error"' in page.text and 'data-reason="failed"' in page.text
    assert "<script" not in page.text
