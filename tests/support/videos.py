"""Real tiny videos made with ffmpeg, and hostile files built to look like videos: for upload tests.

Each is made once a run (functools.cache): a few frames at a few dozen pixels, so the lot costs
about a second.
"""

from __future__ import annotations

import functools
import struct
import subprocess
import tempfile
from pathlib import Path

from tests.support.images import mp4_bytes

HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n" * 40


def _ffmpeg(*arguments: str, output: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="arv-test-video-") as folder:
        path = Path(folder) / output
        command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *arguments, str(path)]
        subprocess.run(command, check=True, timeout=60)
        return path.read_bytes()


def _pattern(width: int, height: int, seconds: float = 1.0, rate: int = 10) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate={rate}:duration={seconds:g}"]


_TONE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-shortest"]


@functools.cache
def h264_aac_mp4() -> bytes:
    """H.264 + AAC in MP4, 64 x 48 at 10 fps, 1 s."""
    return _ffmpeg(
        *_pattern(64, 48), *_TONE, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "32k", output="clip.mp4",
    )  # fmt: skip


@functools.cache
def hevc_mov_rotated() -> bytes:
    """HEVC in QuickTime (tagged hvc1, as iPhones write it) with a 90 degree display rotation, no sound."""
    plain = _ffmpeg(
        *_pattern(64, 48), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
        "-pix_fmt", "yuv420p", "-tag:v", "hvc1", output="plain.mov",
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="arv-test-video-") as folder:
        source = Path(folder) / "plain.mov"
        source.write_bytes(plain)
        # ffmpeg 5.1 writes the rotation into the display matrix when the stream is copied.
        return _ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v:0", "rotate=90", output="turned.mov")


@functools.cache
def vp9_opus_webm() -> bytes:
    """VP9 + Opus in WebM, 64 x 48 at 10 fps, 1 s."""
    return _ffmpeg(
        *_pattern(64, 48), *_TONE, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
        "-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "32k", output="clip.webm",
    )  # fmt: skip


@functools.cache
def portrait_mp4() -> bytes:
    """Portrait 9:16 H.264 in MP4, 36 x 64 at 15 fps, no sound."""
    return _ffmpeg(
        *_pattern(36, 64, rate=15), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        output="portrait.mp4",
    )  # fmt: skip


@functools.cache
def two_hour_mp4() -> bytes:
    """A real H.264 MP4 of 7200 s: a 1 s clip of 10 frames whose timestamps are stretched 7200 times
    (-itsscale) and copied, so it is a few kilobytes and nothing is encoded twice."""
    with tempfile.TemporaryDirectory(prefix="arv-test-video-") as folder:
        source = Path(folder) / "short.mp4"
        source.write_bytes(mp4_bytes())
        return _ffmpeg("-itsscale", "8000", "-i", str(source), "-c", "copy", output="long.mp4")


@functools.cache
def sound_only_mp4() -> bytes:
    """AAC in an MP4, no picture."""
    return _ffmpeg(*_TONE, "-c:a", "aac", "-b:a", "32k", output="sound.mp4")


@functools.cache
def avif_image() -> bytes:
    """A still AVIF photo: an `ftyp` header like an MP4's, brand avif."""
    return _ffmpeg(
        *_pattern(64, 48), "-frames:v", "1", "-c:v", "libaom-av1", "-cpu-used", "8", output="p.avif"
    )


def _vint(number: int) -> bytes:
    """An EBML variable-length size."""
    length = 1
    while number >= (1 << (7 * length)) - 1:
        length += 1
    return ((1 << (7 * length)) | number).to_bytes(length, "big")


def _element(ident: bytes, payload: bytes) -> bytes:
    return ident + _vint(len(payload)) + payload


def _uint(ident: bytes, number: int) -> bytes:
    return _element(ident, number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big"))


def webm_declaring(width: int, height: int, *, seconds: float = 2.0) -> bytes:
    """A WebM file whose VP9 track declares `width` x `height` pixels (Matroska PixelWidth/PixelHeight
    are plain integers, so any size can be written), with two blocks of a few bytes each."""
    header = _element(
        b"\x1a\x45\xdf\xa3",
        _uint(b"\x42\x86", 1) + _uint(b"\x42\xf7", 1) + _uint(b"\x42\xf2", 4) + _uint(b"\x42\xf3", 8)
        + _element(b"\x42\x82", b"webm") + _uint(b"\x42\x87", 4) + _uint(b"\x42\x85", 2),
    )  # fmt: skip
    info = _element(b"\x15\x49\xa9\x66", _uint(b"\x2a\xd7\xb1", 1_000_000) + _element(
        b"\x44\x89", struct.pack(">d", seconds * 1000)
    ))  # fmt: skip
    picture = _element(b"\xe0", _uint(b"\xb0", width) + _uint(b"\xba", height))
    track = _element(
        b"\xae", _uint(b"\xd7", 1) + _uint(b"\x73\xc5", 1) + _uint(b"\x83", 1) + _element(b"\x86", b"V_VP9")
        + picture,
    )  # fmt: skip
    tracks = _element(b"\x16\x54\xae\x6b", track)
    clusters = b"".join(
        _element(
            b"\x1f\x43\xb6\x75",
            _uint(b"\xe7", index * 1000) + _element(b"\xa3", b"\x81\x00\x00\x80" + bytes(64)),
        )
        for index in range(2)
    )
    # A Segment of unknown size, as a live stream writes it.
    return header + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + info + tracks + clusters


def html_behind(header: bytes) -> bytes:
    return header + HTML


MP4_HEADER = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
QUICKTIME_HEADER = struct.pack(">I", 20) + b"ftypqt  " + struct.pack(">I", 512) + b"qt  "
WEBM_HEADER = _element(b"\x1a\x45\xdf\xa3", _uint(b"\x42\x86", 1) + _element(b"\x42\x82", b"webm"))
