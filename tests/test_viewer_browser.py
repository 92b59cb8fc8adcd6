"""Acceptance of the AR page in headless Chromium with a fake camera, against a real API server.

The photo is uploaded through the API and compiled by a real worker with ARV's own compiler; the page
then runs MindAR.js on a camera video of the print held in perspective.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from arv.db.models import Project
from arv.db.session import session_scope
from tests.conftest import Tenant
from tests.support.camera_feed import camera_showing, playable_video
from tests.support.images import photo_jpeg
from tests.support.pipeline import target_photo, wait_for_marker, wait_for_renditions
from tests.support.platform import worker_pool
from tests.support.viewer import (
    BROWSER_DIR,
    REFERENCE_MIND,
    api_server,
    create_content,
    open_viewer,
    place_marker,
    prepare_videos,
)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    # Installed by `make test` (scripts/install-node-deps.sh, apt chromium): missing means a broken setup.
    assert shutil.which("chromium"), "Debian's chromium is not installed: apt-get install -y chromium"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run scripts/install-node-deps.sh"


def test_the_page_tracks_the_print_and_plays_the_video_and_never_tracks_without_it(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], tmp_path: Path
) -> None:
    photo = target_photo()
    # The trained compile (ARV_MARKER_TRAINING=true; compact file): the stock MindAR.js runtime
    # loads it, finds the print and tracks it. (The suite's other workers compile exactly, for speed.)
    with worker_pool({**arv_env, "ARV_MARKER_TRAINING": "true"}, tmp_path) as pool:
        pool.start("markers,default,videos", concurrency=1)
        # H.264 in MP4, as phones record; long enough not to loop during the test, so that its
        # position counts the time it played.
        # One flat colour, to be found on screen where the print is.
        clip = playable_video(tmp_path / "clip.mp4", seconds=30.0, container="mp4", picture="color=c=magenta")
        created = create_content(api, tenant, photo, clip, video_type="video/mp4")
        content = wait_for_marker(api, f"/api/ar-content/{created['id']}", tenant.headers)
        [video] = wait_for_renditions(api, created["id"], tenant.headers)
    assert content["marker_status"] == "ready", content["marker_error"]
    assert video["rendition_status"] == "ready", video["transcode_error"]
    # The print is in view for 4 s, then away for 2 s, and back when the fake camera loops the file.
    print_in_view = camera_showing(photo, tmp_path / "print.y4m", seconds=4.0, away_s=2.0)
    other_picture = camera_showing(photo_jpeg(800, 800, seed=5), tmp_path / "other.y4m")

    with api_server(arv_env, tmp_path) as base:
        page = f"{base}/ar/{created['unique_id']}"
        seen = open_viewer(
            page, camera=print_in_view, until=["tracking", "error"], timeout_s=40, tap=True,
            screenshot=tmp_path / "tracking.png", refound_within_s=25, hold_s=0.5,
        )  # fmt: skip
        states = [s["state"] for s in seen["states"]]
        assert states[:3] == ["loading", "scanning", "tracking"], seen
        # MindAR's warm-up starts as the camera is asked for, not once it has answered.
        marks = seen["marks"]
        warm_up, camera_asked = marks["arv-warm-up-started"], marks["arv-get-user-media"]
        assert camera_asked <= warm_up < marks["arv-camera-answered"], marks
        # All of it under the page's Content-Security-Policy (tests/test_hardening.py): nothing refused.
        assert not [e for e in seen["errors"] if "Content Security Policy" in e], seen["errors"]
        # Lost when the print went away, found again when it came back; playing only while tracking.
        first = states.index("tracking")
        assert states[first : first + 3] == ["tracking", "scanning", "tracking"], seen
        assert all(s["videoPaused"] == (s["state"] != "tracking") for s in seen["states"]), seen["states"]
        if seen["finalState"] == "tracking":
            video = seen["video"]
            assert not video["paused"] and video["currentTime"] > 0.3 and video["readyState"] >= 2, video
        # The print is in the middle of the camera's view, so of the screen: the video covers it there.
        assert (tmp_path / "tracking.png").exists(), f"the video never played on the print: {seen}"
        screen = np.asarray(Image.open(tmp_path / "tracking.png").convert("RGB"), dtype=np.float64)
        middle_y, middle_x = screen.shape[0] // 2, screen.shape[1] // 2
        centre = screen[middle_y - 15 : middle_y + 15, middle_x - 15 : middle_x + 15].mean(axis=(0, 1))
        assert np.abs(centre - [255, 0, 255]).max() < 40, f"not the video's magenta on the print: {centre}"
        assert seen["mutedBeforeTap"] is True, "sound must wait for a tap"
        assert seen["video"]["muted"] is False, "a tap turns the sound on"
        assert seen["cameraRequests"] == 1

        # Opened under another name than ARV_PUBLIC_BASE_URL (127.0.0.1): the marker still loads.
        other_name = page.replace("127.0.0.1", "localhost")
        unseen = open_viewer(other_name, camera=other_picture, until=["tracking", "error"], timeout_s=12)
        assert unseen.get("timedOut") and unseen["finalState"] == "scanning", unseen
        assert "tracking" not in [s["state"] for s in unseen["states"]]
        assert unseen["video"]["paused"]
        assert "Point the camera at the printed photo" in unseen["text"]

    views = api.get(f"/api/ar-content/{created['id']}/views", headers=tenant.headers).json()
    assert views["total"] == 2


def test_expired_content_says_so_without_asking_for_the_camera_and_refusals_are_explained(
    api: TestClient, make_tenant, arv_env: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    russian = make_tenant("Фотостудия", language="ru")
    created = create_content(api, russian, photo_jpeg(674, 372), playable_video(tmp_path / "clip.webm"))
    # The page's surroundings only: the shared reference marker stands in for a compiled one.
    place_marker(created["id"], REFERENCE_MIND.read_bytes())
    prepare_videos()
    camera = camera_showing(photo_jpeg(674, 372), tmp_path / "print.y4m", seconds=1.0)

    with api_server(arv_env, tmp_path) as base:
        page = f"{base}/ar/{created['unique_id']}"
        refused = open_viewer(
            page, camera=camera, until=["error", "tracking"], timeout_s=20, grant_camera=False
        )
        assert (refused["finalState"], refused["finalReason"]) == ("error", "camera"), refused
        assert "Камера недоступна" in refused["text"]

        no_webgl = open_viewer(
            page, camera=camera, until=["error", "tracking"], timeout_s=20, without_webgl=True
        )
        assert (no_webgl["finalState"], no_webgl["finalReason"]) == ("error", "unsupported"), no_webgl
        assert no_webgl["cameraRequests"] == 0
        assert "Этот браузер не поддерживает AR" in no_webgl["text"]

        with session_scope() as session:
            session.execute(update(Project).values(status="expired"))
        expired = open_viewer(page, camera=camera, until=["expired"], timeout_s=10, hold_s=1.0)
        assert expired["finalState"] == "expired" and expired["httpStatus"] == 410, expired
        assert expired["cameraRequests"] == 0
        assert "Срок действия истёк" in expired["text"]
        for report in (refused, no_webgl, expired):
            assert not [e for e in report["errors"] if "Content Security Policy" in e], report["errors"]
