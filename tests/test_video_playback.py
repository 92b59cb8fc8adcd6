"""The renditions ARV makes play in a real browser: every input phones upload plays in the AR page over
the print, upright; a video still being prepared shows its poster and a notice, then plays by itself.

Debian's headless Chromium with a fake camera showing MindAR's example print, and MindAR's own .mind of
it: the page and the renditions are under test here, not ARV's compiler (tests/test_viewer_browser.py).
All ten inputs play in the full AR page (one content, its active video switched between page loads, one
browser kept open): the ten loads take 50-65 s on this 2-core machine, under the 120 s past which a
plain <video> page would have to stand in for most of them.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from arv.db.models import ARContent, RenditionStatus, Video
from arv.db.session import session_scope
from tests.conftest import Tenant
from tests.support.camera_feed import camera_showing, playable_video
from tests.support.fixtures import MINDAR_FIXTURES
from tests.support.platform import wait_until
from tests.support.video_matrix import MATRIX, first_frame, is_upright, make_input
from tests.support.viewer import (
    BROWSER_DIR,
    api_server,
    create_content,
    open_viewer,
    place_marker,
    prepare_videos,
    run_queued,
    video_picture,
    viewer_browser,
)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"])]

PRINT = MINDAR_FIXTURES / "pictarize.jpg"
PRINT_MIND = MINDAR_FIXTURES / "pictarize.mind"
# What navigator.connection says on a fast network, and with data saving on. Chromium's own estimate
# before it has measured a network (1.6 Mbit/s, headless here) counts as slow, so each load says which.
FAST = {"saveData": False, "effectiveType": "4g", "downlink": 10}
SAVING_DATA = {"saveData": True, "effectiveType": "4g", "downlink": 10}
MAGENTA = (255, 0, 255)


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    assert shutil.which("chromium"), "Debian's chromium is not installed: apt-get install -y chromium"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run scripts/install-node-deps.sh"


def _upload(
    api: TestClient, tenant: Tenant, content_id: int, path: Path, content_type: str
) -> dict[str, Any]:
    answer = api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": (path.name, path.read_bytes(), content_type)},
        headers=tenant.headers,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _make_active(video_id: int) -> None:
    with session_scope() as session:
        session.execute(update(ARContent).values(active_video_id=video_id))


def _path(url: str) -> str:
    """A download link without its signature, which differs from one link to the next."""
    return urlsplit(url).path


def _assert_played_upright(seen: dict[str, Any], source: Path, what: str) -> dict[str, Any]:
    """The page found the print and played the video on it: the video's time advanced, its picture is
    upright and has the shape of the source as a person sees it. Returns the video's sample."""
    assert seen["finalState"] == "tracking" and seen.get("videoSamples"), f"{what}: {seen}"
    sample = seen["videoSamples"][-1]
    before, after = sample["before"], sample["after"]
    assert not after["paused"] and after["frames"] > before["frames"], f"{what}: {sample}"
    assert after["currentTime"] != before["currentTime"], f"{what}: {sample}"
    picture = video_picture(sample)
    assert is_upright(picture), f"{what}: not upright in the browser ({picture.shape[1]}x{picture.shape[0]})"
    shown = first_frame(source)
    landscape = sample["videoWidth"] > sample["videoHeight"]
    assert landscape == (shown.shape[1] > shown.shape[0]), (
        f"{what}: {sample['videoWidth']}x{sample['videoHeight']}"
    )
    assert not [e for e in seen["errors"] if "Content Security Policy" in e], f"{what}: {seen['errors']}"
    # The mark a benchmark reads: the first frame on the print, after the print was found.
    marks = seen["marks"]
    assert marks["arv-target-found"] <= marks["arv-video-first-frame"] <= marks["arv-target-found"] + 5, marks
    return sample  # type: ignore[no-any-return]


def test_every_input_phones_upload_plays_upright_on_the_print(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], tmp_path: Path, video_inputs: Path
) -> None:
    started = time.monotonic()
    photo = PRINT.read_bytes()
    created = create_content(api, tenant, photo, None)
    place_marker(created["id"], PRINT_MIND.read_bytes())
    inputs = {name: make_input(name, video_inputs) for name in MATRIX}
    uploaded = {
        name: _upload(api, tenant, created["id"], path, MATRIX[name].content_type)
        for name, path in inputs.items()
    }
    made_s = time.monotonic() - started
    prepare_videos()
    transcoded_s = time.monotonic() - started - made_s
    videos = {
        v["id"]: v for v in api.get(f"/api/ar-content/{created['id']}/videos", headers=tenant.headers).json()
    }
    assert all(v["rendition_status"] == "ready" for v in videos.values()), videos
    camera = camera_showing(photo, tmp_path / "print.y4m", seconds=4.0)

    with api_server(arv_env, tmp_path) as base, viewer_browser(camera=camera, log_dir=tmp_path) as browser:
        page = f"{base}/ar/{created['unique_id']}"
        loads_started = time.monotonic()
        first_frame_after_s = []
        for name, video in uploaded.items():
            _make_active(video["id"])
            seen = browser.open(
                page, until=["tracking", "error"], timeout_s=30, video_picture=True, connection=FAST
            )
            sample = _assert_played_upright(seen, inputs[name], name)
            assert seen["finalVideo"] == "ready" and "still being prepared" not in seen["text"], seen
            main = videos[video["id"]]["rendition_url"]
            assert _path(sample["src"]) == _path(main), f"{name}: not the main rendition: {sample['src']}"
            marks = seen["marks"]
            first_frame_after_s.append(marks["arv-video-first-frame"] - marks["arv-target-found"])
        loads_s = time.monotonic() - loads_started

        # Data saving on: a video with a small rendition plays that one.
        name = "4K60 H.264"
        video = videos[uploaded[name]["id"]]
        [small] = [r for r in video["renditions"] if r["label"] == "small"]
        _make_active(video["id"])
        seen = browser.open(
            page, until=["tracking", "error"], timeout_s=30, video_picture=True, connection=SAVING_DATA
        )
        sample = _assert_played_upright(seen, inputs[name], f"{name}, saving data")
        assert _path(sample["src"]) == _path(small["url"]), sample["src"]
        assert max(sample["videoWidth"], sample["videoHeight"]) == max(small["width"], small["height"]) <= 540
    print(
        f"inputs made in {made_s:.1f} s, transcoded in {transcoded_s:.1f} s, "
        f"played in the AR page in {loads_s:.1f} s; first frame after the print was found: "
        f"median {np.median(first_frame_after_s):.3f} s, at most {max(first_frame_after_s):.3f} s"
    )


def test_a_video_still_being_prepared_shows_its_poster_and_a_notice_then_plays_without_a_reload(
    api: TestClient, make_tenant, arv_env: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    photo = PRINT.read_bytes()
    russian = make_tenant("Фотостудия", language="ru")
    clip = playable_video(tmp_path / "clip.mp4", seconds=3.0, container="mp4", picture="color=c=magenta")
    created = create_content(api, russian, photo, clip, video_type="video/mp4")
    place_marker(created["id"], PRINT_MIND.read_bytes())
    run_queued("generate_video_poster")
    # The videos worker is a third of the way through (what it writes as it goes).
    with session_scope() as session:
        session.execute(
            update(Video).values(rendition_status=RenditionStatus.PROCESSING, transcode_progress=37.5)
        )
    body = api.get(f"/api/ar/{created['unique_id']}").json()
    assert body["state"] == "preparing" and body["poster_url"] and body["video_url"] is None, body
    camera = camera_showing(photo, tmp_path / "print.y4m", seconds=4.0)
    signal = tmp_path / "tracking.json"
    screenshot = tmp_path / "poster.png"

    with api_server(arv_env, tmp_path) as base:
        reports: list[dict[str, Any]] = []
        session = threading.Thread(
            target=lambda: reports.append(
                open_viewer(
                    f"{base}/ar/{created['unique_id']}", camera=camera, until=["tracking", "error"],
                    timeout_s=30, screenshot=screenshot, signal_file=signal, video_ready_within_s=30,
                    video_picture=True, connection=FAST,
                )
            )
        )  # fmt: skip
        session.start()
        wait_until(
            lambda: signal.exists() or not session.is_alive(), timeout=120, what="the page on the print"
        )
        while_preparing = json.loads(signal.read_text())
        # Now the worker finishes: the page, still open, finds out and plays the video.
        prepare_videos()
        session.join(timeout=120)
    [seen] = reports

    assert [v["video"] for v in seen["videoStates"]] == ["preparing", "ready"], seen["videoStates"]
    assert "tracking" in [s["state"] for s in seen["states"]], seen["states"]
    assert "Видео ещё готовится" in while_preparing["text"], while_preparing
    assert "Готово: 37 %" in while_preparing["text"], while_preparing
    # The poster (the video's magenta frame) covers the print, in the middle of the camera's view.
    screen = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.float64)
    middle_y, middle_x = screen.shape[0] // 2, screen.shape[1] // 2
    centre = screen[middle_y - 15 : middle_y + 15, middle_x - 15 : middle_x + 15].mean(axis=(0, 1))
    assert np.abs(centre - MAGENTA).max() < 40, f"not the poster's magenta on the print: {centre}"

    assert seen["videoPlayedAtS"] is not None, seen
    assert seen["pageLoads"] == 1 and seen["finalVideo"] == "ready" and seen["finalPrint"] == "video", seen
    sample = seen["videoSamples"][-1]
    assert sample["after"]["frames"] > sample["before"]["frames"] and not sample["after"]["paused"], sample
    assert "/renditions/" in sample["src"], sample["src"]
    assert _path(seen["video"]["poster"]) == _path(body["poster_url"]), seen["video"]
    assert "Видео ещё готовится" not in seen["text"], seen["text"]
    assert not [e for e in seen["errors"] if "Content Security Policy" in e], seen["errors"]
    # The page asked again every few seconds; it counted one view.
    views = api.get(f"/api/ar-content/{created['id']}/views", headers=russian.headers).json()
    assert views["total"] == 2  # this test's own request above, and the page's load
