"""Web renditions (issue 12): every video phones upload, sent through the API and transcoded by the real
job, comes out as an MP4 every phone plays, at its source's nominal frame rate; a file that stalls
ffmpeg is stopped by the stall timeout, and a video ffmpeg cannot make one of fails, each with the
reason on its record, while the content keeps playing what it played; originals are kept or dropped
as the settings say; deleting a video erases every rendition.

Worker processes under faults (time limits, SIGKILL, SIGTERM): tests/test_transcode_faults.py.

The renditions are read back with ffprobe and by their boxes, not by what the job says of them.
"""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from fastapi.testclient import TestClient

from arv.config import get_settings
from arv.db.models import Video
from arv.db.session import get_engine, get_sessionmaker, session_scope
from arv.jobs import store
from arv.jobs.kinds import kind_named
from arv.jobs.runner import _settle_success
from arv.services.deletion import ERASE_OBJECTS
from arv.services.transcode import MAIN, SMALL, SMALL_PAYS_ABOVE
from arv.storage import get_storage
from tests.conftest import Tenant
from tests.support.images import photo_jpeg
from tests.support.jobs import run_job_here
from tests.support.pipeline import download
from tests.support.video_matrix import (
    MATRIX,
    first_frame,
    frames_at_one_instant_mp4,
    is_upright,
    make_input,
    plain_mp4,
    undecodable_sound_mov,
)
from tests.support.viewer import REFERENCE_MIND, place_marker, prepare_videos, queued_jobs, run_queued

# A rendition lasts as long as its source, within this (an audio frame, a last video frame).
DURATION_TOLERANCE_S = 0.1


@pytest.fixture
def inputs(video_inputs: Path) -> Path:
    """The folder the run's inputs are made in, each once (make_input reuses a file made)."""
    return video_inputs


def upload_content(api: TestClient, tenant: Tenant, path: Path, content_type: str) -> dict[str, Any]:
    """AR content with the video at `path`, posted as a phone's browser would: its own name and type."""
    project = api.post("/api/projects", json={"name": "Prints"}, headers=tenant.headers).json()
    created = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "Portrait"},
        files={
            "image": ("photo.jpg", photo_jpeg(320, 240), "image/jpeg"),
            "video": (f"IMG_0001{path.suffix}", path.read_bytes(), content_type),
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def upload_video(api: TestClient, tenant: Tenant, content_id: int, path: Path, content_type: str) -> int:
    response = api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": (f"IMG_0002{path.suffix}", path.read_bytes(), content_type)},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def videos_of(api: TestClient, tenant: Tenant, content_id: int) -> dict[int, dict[str, Any]]:
    response = api.get(f"/api/ar-content/{content_id}/videos", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return {video["id"]: video for video in response.json()}


def stored_keys() -> set[str]:
    return {stored.key for stored in get_storage().list_objects(limit=100_000)}


def key_of(url: str) -> str:
    """The storage key a download link serves (the local folder's signed link, or S3's)."""
    return unquote(urlsplit(url).path).split("/", 2)[-1]


def ffmpeg_processes(marker: str) -> list[int]:
    """The ids of running ffmpeg processes with `marker` (a folder of the test's) in their arguments."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            arguments = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_ffmpeg = Path(arguments[0].decode(errors="replace")).name == "ffmpeg"
        if is_ffmpeg and any(marker.encode() in argument for argument in arguments):
            found.append(int(proc.name))
    return found


def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def top_level_boxes(path: Path) -> list[str]:
    """The kinds of an MP4 file's top-level boxes, in file order."""
    kinds = []
    with open(path, "rb") as f:
        while header := f.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0] - 8
            kinds.append(kind.decode("latin-1"))
            if size == 0:
                break
            f.seek(size - 8, 1)
    return kinds


def stream_rotation(stream: dict[str, Any]) -> float:
    """Degrees a player would turn the stream: its display matrix or its `rotate` tag, 0 when none."""
    for side in stream.get("side_data_list") or []:
        if side.get("side_data_type") == "Display Matrix":
            return float(side.get("rotation") or 0)
    return float((stream.get("tags") or {}).get("rotate") or 0)


def display_long_side(probe: dict[str, Any]) -> int:
    """The long side of the source as shown, read from the video's own probe record."""
    return max(round(probe["width"] * probe.get("pixel_aspect", 1.0)), probe["height"])


def check_plays_on_every_phone(
    path: Path, *, label: str, source_duration_s: float, source_has_audio: bool
) -> dict[str, Any]:
    """Assert the file at `path` is what every phone plays; returns its video stream as ffprobe reads it."""
    found = ffprobe(path)
    streams = found["streams"]
    [picture] = [s for s in streams if s["codec_type"] == "video"]
    sounds = [s for s in streams if s["codec_type"] == "audio"]
    assert "mp4" in found["format"]["format_name"]
    assert (picture["codec_name"], picture["pix_fmt"], picture["profile"]) == ("h264", "yuv420p", "High")
    assert [s["codec_name"] for s in sounds] == (["aac"] if source_has_audio else [])
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert stream_rotation(picture) == 0, picture
    assert is_upright(first_frame(path)), f"the {label} rendition is not upright"
    width, height = picture["width"], picture["height"]
    limit = MAIN.max_side if label == "main" else SMALL.max_side
    assert max(width, height) <= limit and width % 2 == 0 and height % 2 == 0, (width, height)
    assert Fraction(picture["avg_frame_rate"]) <= 30 and Fraction(picture["r_frame_rate"]) <= 30
    duration = float(found["format"]["duration"])
    assert abs(duration - source_duration_s) <= DURATION_TOLERANCE_S, (duration, source_duration_s)
    return picture  # type: ignore[no-any-return]


# ---- acceptance 1: every input plays on every phone ---------------------------------------------


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.parametrize("case", list(MATRIX))
def test_every_phone_upload_becomes_renditions_every_phone_plays(
    api: TestClient, tenant: Tenant, inputs: Path, tmp_path: Path, case: str
) -> None:
    source = make_input(case, inputs)
    created = upload_content(api, tenant, source, MATRIX[case].content_type)
    results = prepare_videos()
    assert len(results) == 1 and "renditions" in results[0], results

    [video] = videos_of(api, tenant, created["id"]).values()
    assert (video["rendition_status"], video["transcode_progress"], video["transcode_error"]) == (
        "ready", 100.0, None,
    )  # fmt: skip
    with session_scope() as session:
        row = session.get(Video, video["id"])
        assert row is not None
        probe = dict(row.probe or {})
    # The small rendition where it pays: the main one's long side above 720 px.
    pays = min(display_long_side(probe), MAIN.max_side) > SMALL_PAYS_ABOVE
    assert [r["label"] for r in video["renditions"]] == (["main", "small"] if pays else ["main"])
    if case == "4K60 H.264":
        assert pays
    if case in ("no audio", "HEVC in QuickTime turned 90 degrees"):
        assert not pays
    assert video["rendition_url"] == video["renditions"][0]["url"]

    for facts in video["renditions"]:
        path = tmp_path / f"{facts['label']}.mp4"
        path.write_bytes(download(api, facts["url"]))
        picture = check_plays_on_every_phone(
            path,
            label=facts["label"],
            source_duration_s=video["duration_s"],
            source_has_audio=MATRIX[case].has_audio,
        )
        # What the record says of each rendition is what the file is.
        assert (facts["width"], facts["height"]) == (picture["width"], picture["height"])
        assert facts["size_bytes"] == path.stat().st_size
        assert facts["audio_codec"] == ("aac" if MATRIX[case].has_audio else None)
        assert abs(facts["duration_s"] - video["duration_s"]) <= DURATION_TOLERANCE_S


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.parametrize(
    ("recorded", "played"),
    [
        ("30000/1001", "30000/1001"),  # NTSC 29.97, which ffprobe rounds to 29.97
        ("3003/100", "30/1"),  # a phone's 30 whose timestamps average a little more
        ("60000/1001", "30000/1001"),
        ("5994/100", "30000/1001"),
    ],
)
def test_a_rendition_keeps_the_nominal_frame_rate_of_its_source(
    api: TestClient, tenant: Tenant, inputs: Path, tmp_path: Path, recorded: str, played: str
) -> None:
    """Not the next whole rate, and not half of it: a 30.03 frames/s average is 30, not 15."""
    source = plain_mp4(inputs, width=160, height=90, seconds=1.0, rate=recorded)
    assert Fraction(ffprobe(source)["streams"][0]["avg_frame_rate"]) == Fraction(recorded)
    created = upload_content(api, tenant, source, "video/mp4")
    prepare_videos()
    [video] = videos_of(api, tenant, created["id"]).values()
    rendition = tmp_path / "main.mp4"
    rendition.write_bytes(download(api, video["rendition_url"]))
    picture = check_plays_on_every_phone(
        rendition, label="main", source_duration_s=video["duration_s"], source_has_audio=True
    )
    assert picture["avg_frame_rate"] == played and picture["r_frame_rate"] == played


# ---- acceptance 2: a file that makes ffmpeg hang ------------------------------------------------


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_video_that_makes_ffmpeg_stall_is_stopped_with_the_reason_on_its_record(
    api: TestClient, tenant: Tenant, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 s video of 100,000 pictures shown at one instant: ffmpeg decodes for minutes with its output
    at 0 s. The stall timeout ends it, and no ffmpeg is left running."""
    monkeypatch.setenv("ARV_VIDEO_STALL_TIMEOUT_S", "2")
    get_settings.cache_clear()
    marker = tmp_path / "transcode-temp"
    marker.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(marker))
    created = upload_content(api, tenant, frames_at_one_instant_mp4(inputs), "video/mp4")

    started = time.monotonic()
    [result] = prepare_videos()
    took = time.monotonic() - started

    sentence = "ffmpeg made no progress on the video for 2 s and was stopped"
    assert sentence in result["failed"]
    assert 2 <= took < 15, took
    [video] = videos_of(api, tenant, created["id"]).values()
    assert video["rendition_status"] == "failed" and sentence in video["transcode_error"]
    assert video["transcode_progress"] is None and video["renditions"] == []
    assert ffmpeg_processes(str(marker)) == []
    assert not [key for key in stored_keys() if key.startswith("renditions/")]


# ---- acceptance 2: a video ffmpeg cannot transcode ----------------------------------------------


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_video_ffmpeg_cannot_transcode_fails_and_the_content_keeps_playing_its_previous_one(
    api: TestClient, tenant: Tenant, inputs: Path
) -> None:
    """Its sound is in a codec ffmpeg has no decoder for: the upload probe keeps it (the picture
    decodes), ffmpeg refuses it. The content, told to play it, plays its earlier video meanwhile."""
    created = upload_content(api, tenant, make_input("2 s clip", inputs), "video/mp4")
    place_marker(created["id"], REFERENCE_MIND.read_bytes())
    prepare_videos()
    first = videos_of(api, tenant, created["id"])[created["active_video_id"]]
    playing = api.get(f"/api/ar/{created['unique_id']}").json()
    assert playing["state"] == "active" and key_of(playing["video_url"]) == key_of(first["rendition_url"])

    broken = upload_video(api, tenant, created["id"], undecodable_sound_mov(inputs), "video/quicktime")
    rotation = api.put(
        f"/api/ar-content/{created['id']}/rotation",
        json={"rotation_type": "daily", "video_sequence": [broken]},
        headers=tenant.headers,
    )
    assert rotation.status_code == 200 and rotation.json()["active_video_id"] == broken
    [result] = prepare_videos()
    assert "failed" in result, result

    failed = videos_of(api, tenant, created["id"])[broken]
    assert failed["rendition_status"] == "failed" and failed["renditions"] == []
    assert failed["transcode_error"].startswith("the video's sound is in a format ffmpeg cannot decode")
    assert "Decoder (codec none) not found" in failed["transcode_error"]
    assert failed["transcode_error"].endswith("export it again with AAC sound, or without sound")
    content = api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()
    assert content["active_video_id"] == broken
    still = api.get(f"/api/ar/{created['unique_id']}").json()
    assert still["state"] == "active" and key_of(still["video_url"]) == key_of(first["rendition_url"])
    assert key_of(still["video_url"]).startswith("renditions/")


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_an_original_missing_from_storage_fails_the_transcode_saying_so(
    api: TestClient, tenant: Tenant, inputs: Path
) -> None:
    created = upload_content(api, tenant, make_input("no audio", inputs), "video/mp4")
    with session_scope() as session:
        video = session.get(Video, created["active_video_id"])
        assert video is not None
        get_storage().delete(video.storage_key)
    [result] = prepare_videos()
    assert result["failed"] == "the uploaded video is missing from storage; upload it again"
    [video_out] = videos_of(api, tenant, created["id"]).values()
    assert video_out["rendition_status"] == "failed" and video_out["transcode_error"] == result["failed"]


# ---- originals kept or dropped; deletion erases every rendition ----------------------------------


@pytest.mark.parametrize("db_backend", ["sqlite"])
@pytest.mark.parametrize("keep", [True, False])
def test_the_original_is_kept_or_dropped_as_the_setting_says(
    api: TestClient, tenant: Tenant, inputs: Path, monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    """Dropped, the original is deleted once its renditions are recorded, and the rendition stands in
    for it everywhere: the video's link, the poster made after it is gone."""
    if not keep:
        monkeypatch.setenv("ARV_KEEP_VIDEO_ORIGINALS", "false")
        get_settings.cache_clear()
    created = upload_content(api, tenant, make_input("2 s clip", inputs), "video/mp4")
    place_marker(created["id"], REFERENCE_MIND.read_bytes())
    with session_scope() as session:
        video_row = session.get(Video, created["active_video_id"])
        assert video_row is not None
        original = video_row.storage_key
    assert run_queued("transcode_video")[0]["renditions"]
    [poster] = run_queued("generate_video_poster")
    assert "failed" not in poster, poster

    [video] = videos_of(api, tenant, created["id"]).values()
    assert video["rendition_status"] == "ready" and video["original_kept"] is keep
    assert (original in stored_keys()) is keep
    assert key_of(video["video_url"]) == (original if keep else key_of(video["rendition_url"]))
    with session_scope() as session:
        video_row = session.get(Video, created["active_video_id"])
        assert video_row is not None and video_row.poster_key in stored_keys()
    page = api.get(f"/api/ar/{created['unique_id']}").json()
    assert page["poster_url"] and key_of(page["video_url"]) == key_of(video["rendition_url"])


def run_erasure() -> None:
    results = [run_job_here(job_id) for job_id in queued_jobs(ERASE_OBJECTS.name)]
    assert results and all(isinstance(r, dict) and "erased" in r for r in results), results


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_deleting_a_video_and_its_content_erases_every_rendition(
    api: TestClient, tenant: Tenant, inputs: Path
) -> None:
    clip = plain_mp4(inputs, width=1280, height=720, seconds=1.0)
    created = upload_content(api, tenant, clip, "video/mp4")
    second = upload_video(api, tenant, created["id"], clip, "video/mp4")
    prepare_videos()
    with session_scope() as session:
        rows = {v.id: (v.rendition_key, v.small_rendition_key) for v in session.query(Video)}
    assert all(main and small for main, small in rows.values()), rows
    assert {key for pair in rows.values() for key in pair} <= stored_keys()

    deleted = api.delete(f"/api/ar-content/{created['id']}/videos/{second}", headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text
    run_erasure()
    assert not set(rows[second]) & stored_keys()
    assert set(rows[created["active_video_id"]]) <= stored_keys()

    assert api.delete(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 204
    run_erasure()
    assert stored_keys() == set()


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_transcode_that_ends_after_its_video_was_deleted_leaves_nothing(
    api: TestClient, tenant: Tenant, inputs: Path
) -> None:
    """It writes both renditions, finds its video gone when it settles, and deletes what it wrote."""
    created = upload_content(api, tenant, plain_mp4(inputs, width=1280, height=720, seconds=1.0), "video/mp4")
    [job_id] = queued_jobs("transcode_video")
    kind = kind_named("transcode_video")
    assert kind is not None
    with get_engine().connect() as connection, get_sessionmaker()(bind=connection) as session:
        job = store.claim(connection, job_id, lease_s=600)
        assert job is not None
        outcome = kind.run(session, job)
        session.commit()
        written = {key for key in stored_keys() if key.startswith("renditions/")}
        assert len(written) == 2, written  # the main rendition and the small one

        assert api.delete(f"/api/ar-content/{created['id']}", headers=tenant.headers).status_code == 204
        result = _settle_success(session, kind, job, outcome, kind.retry(get_settings()))
    assert result.get("superseded") is True
    assert not written & stored_keys()
    run_erasure()
    assert stored_keys() == set()
