"""Every video upload is read by ffprobe before it is accepted: hostile files are refused with a 4xx
and leave nothing behind, real videos are kept with what the probe found."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from arv.db.models import Video
from arv.db.session import session_scope
from arv.services.uploads import UploadRefused
from arv.services.video_probe import probe_video
from tests.conftest import Tenant
from tests.support import videos
from tests.support.images import photo_jpeg
from tests.test_api_uploads import row_counts, stored_files

JPEG = photo_jpeg(160, 120)


def _truncated_mp4() -> bytes:
    whole = videos.h264_aac_mp4()
    return whole[: len(whole) * 2 // 3]


def _html_in_a_free_box() -> bytes:
    """Boxes that add up (ftyp, then a `free` box holding a web page), so only ffprobe can tell."""
    return videos.MP4_HEADER + struct.pack(">I", 8 + len(videos.HTML)) + b"free" + videos.HTML


def _mp4_with_blank_frames() -> bytes:
    """A whole MP4 whose index is right but whose picture data is all zero bytes."""
    whole = bytearray(videos.h264_aac_mp4())
    at = whole.find(b"mdat")
    (size,) = struct.unpack(">I", whole[at - 4 : at])
    whole[at + 4 : at - 4 + size] = bytes(size - 8)
    return bytes(whole)


# name: (make the file, status, words the refusal must contain)
HOSTILE: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "HTML behind an MP4 header": (lambda: videos.html_behind(videos.MP4_HEADER), 415, "not part of one"),
    "HTML behind a QuickTime header": (lambda: videos.html_behind(videos.QUICKTIME_HEADER), 415, "not part"),
    "HTML behind a bare QuickTime free box": (lambda: videos.html_behind(b"\0\0\0\x08free"), 415, "not part"),
    "HTML inside a well-formed free box": (_html_in_a_free_box, 415, "not a video"),
    "HTML behind a WebM header": (lambda: videos.html_behind(videos.WEBM_HEADER), 415, "not a video"),
    "truncated MP4": (_truncated_mp4, 422, "truncated"),
    "MP4 whose frames are zeros": (_mp4_with_blank_frames, 422, "cannot be decoded"),
    "100000 x 100000 pixels": (lambda: videos.webm_declaring(100_000, 100_000), 413, "100000 x 100000"),
    "9000 x 9000 pixels": (lambda: videos.webm_declaring(9000, 9000), 413, "9000 x 9000"),
    "2-hour video": (videos.two_hour_mp4, 413, "7200 s"),
    "JPEG renamed .mp4": (lambda: JPEG, 415, "not MP4"),
    "AVIF photo renamed .mp4": (videos.avif_image, 415, "still image"),
    "sound without a picture": (videos.sound_only_mp4, 415, "no picture"),
}

# name: (make the file, container, codec, audio, width, height, rotation, frame rate)
GOOD: dict[str, tuple[Callable[[], bytes], str, str, str | None, int, int, int, float]] = {
    "H.264 + AAC MP4": (videos.h264_aac_mp4, "video/mp4", "h264", "aac", 64, 48, 0, 10.0),
    "HEVC MOV turned 90 degrees": (
        videos.hevc_mov_rotated,
        "video/quicktime",
        "hevc",
        None,
        64,
        48,
        90,
        10.0,
    ),
    "VP9 + Opus WebM": (videos.vp9_opus_webm, "video/webm", "vp9", "opus", 64, 48, 0, 10.0),
    "portrait without sound": (videos.portrait_mp4, "video/mp4", "h264", None, 36, 64, 0, 15.0),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_probe_refuses_hostile_files_saying_why(case: str) -> None:
    make, status, words = HOSTILE[case]
    with pytest.raises(UploadRefused) as refused:
        probe_video(make(), max_seconds=600, timeout_s=15)
    assert refused.value.status_code == status, str(refused.value)
    assert words.lower() in str(refused.value).lower()


@pytest.mark.parametrize("case", list(GOOD))
def test_probe_reads_real_videos(case: str) -> None:
    make, container, codec, audio, width, height, rotation, rate = GOOD[case]
    found = probe_video(make(), max_seconds=600, timeout_s=15)
    assert (found.content_type, found.video_codec, found.audio_codec) == (container, codec, audio)
    assert (found.width, found.height, found.rotation, found.frame_rate) == (width, height, rotation, rate)
    assert found.duration_s == pytest.approx(1.0, abs=0.05)
    assert (found.pix_fmt, found.bit_depth) == ("yuv420p", 8)


def test_the_length_limit_is_the_setting() -> None:
    with pytest.raises(UploadRefused) as refused:
        probe_video(videos.h264_aac_mp4(), max_seconds=0.5, timeout_s=15)
    assert refused.value.status_code == 413 and "limit of 0.5 s" in str(refused.value)


def test_ffprobe_running_out_of_time_is_a_refusal() -> None:
    with pytest.raises(UploadRefused) as refused:
        probe_video(videos.h264_aac_mp4(), max_seconds=600, timeout_s=0.001)
    assert refused.value.status_code == 422 and "within 0.001 s" in str(refused.value)


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_an_api_host_without_ffprobe_says_so_and_keeps_nothing(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    content_id = _content(api, tenant)
    before_files = stored_files(arv_env)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    response = api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": ("clip.mp4", videos.h264_aac_mp4(), "video/mp4")},
        headers=tenant.headers,
    )
    assert response.status_code == 503, response.text
    assert "ffprobe" in response.json()["detail"] and "install" in response.json()["detail"]
    assert stored_files(arv_env) == before_files


def _content(api: TestClient, tenant: Tenant) -> int:
    project = api.post("/api/projects", json={"name": "P"}, headers=tenant.headers).json()
    created = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "T"},
        files={"image": ("a.jpg", JPEG, "image/jpeg")},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_video_is_refused_at_upload_and_nothing_is_stored(
    case: str, api: TestClient, tenant: Tenant, arv_env: dict[str, str]
) -> None:
    make, status, words = HOSTILE[case]
    content_id = _content(api, tenant)
    before_files, before_rows = stored_files(arv_env), row_counts()
    response = api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": ("clip.mp4", make(), "video/mp4")},
        headers=tenant.headers,
    )
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["detail"].lower()
    assert stored_files(arv_env) == before_files
    assert row_counts() == before_rows and before_rows["videos"] == 0


def test_real_videos_are_kept_with_their_probe(api: TestClient, tenant: Tenant) -> None:
    content_id = _content(api, tenant)
    for case, (make, container, codec, audio, width, height, rotation, rate) in GOOD.items():
        response = api.post(
            f"/api/ar-content/{content_id}/videos",
            files={"video": ("clip", make(), "application/octet-stream")},
            headers=tenant.headers,
        )
        assert response.status_code == 201, f"{case}: {response.text}"
        body = response.json()
        assert (body["content_type"], body["video_codec"], body["audio_codec"]) == (container, codec, audio)
        assert (body["width"], body["height"], body["rotation"], body["frame_rate"]) == (
            width, height, rotation, rate,
        )  # fmt: skip
        assert body["duration_s"] == pytest.approx(1.0, abs=0.05)
        with session_scope() as session:
            video = session.get(Video, body["id"])
            assert video is not None and video.probe is not None
            assert video.probe["video_codec"] == codec and video.probe["pix_fmt"] == "yuv420p"
            assert (video.width, video.height, video.rotation) == (width, height, rotation)
    listed = api.get(f"/api/ar-content/{content_id}/videos", headers=tenant.headers).json()
    assert sorted(v["video_codec"] for v in listed) == ["h264", "h264", "hevc", "vp9"]


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_the_api_takes_its_length_limit_from_arv_max_video_seconds(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arv.config import Settings, get_settings

    monkeypatch.setenv("ARV_MAX_VIDEO_SECONDS", "0.5")
    assert Settings().max_video_seconds == 0.5
    monkeypatch.setattr(get_settings(), "max_video_seconds", 0.5)
    content_id = _content(api, tenant)
    response = api.post(
        f"/api/ar-content/{content_id}/videos",
        files={"video": ("clip.mp4", videos.h264_aac_mp4(), "video/mp4")},
        headers=tenant.headers,
    )
    assert response.status_code == 413, response.text
    assert "limit of 0.5 s" in response.json()["detail"]
    assert row_counts()["videos"] == 0


def test_a_camera_box_of_its_own_is_let_through_but_a_cut_one_is_not() -> None:
    # Samsung phones end their MP4s with an `sefd` box; a box of an unknown kind running past the end
    # of the file is not taken for a cut-off video but for something else behind a video header.
    whole = videos.h264_aac_mp4()
    extra = struct.pack(">I", 24) + b"sefd" + bytes(16)
    assert probe_video(whole + extra, max_seconds=600, timeout_s=15).video_codec == "h264"
    with pytest.raises(UploadRefused) as refused:
        probe_video(whole + extra[:20], max_seconds=600, timeout_s=15)
    assert refused.value.status_code == 415 and "not part of one" in str(refused.value)
