"""The inputs phones and cameras upload, each made here with ffmpeg, and how to tell a picture is upright.

Every input shows the same picture: four coloured quadrants (red top left, green top right, blue bottom
left, white bottom right) as the video is meant to be seen. A video whose stored pixels are turned
(the rotated HEVC) stores them turned the other way and says so in its display matrix, as a phone
held upright does; so a rendition is upright when its first frame, decoded plainly, shows the
quadrants where they belong.

Sizes are small where the case allows (a few hundred pixels), so the whole matrix is made in seconds;
the 4K60 case is 4K at 60 frames, for one second.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Quadrant colours, as the picture is meant to be seen: top left, top right, bottom left, bottom right.
QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))


def quadrant_picture(width: int, height: int) -> Image.Image:
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    half_y, half_x = height // 2, width // 2
    picture[:half_y, :half_x] = QUADRANTS[0]
    picture[:half_y, half_x:] = QUADRANTS[1]
    picture[half_y:, :half_x] = QUADRANTS[2]
    picture[half_y:, half_x:] = QUADRANTS[3]
    return Image.fromarray(picture)


def ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *arguments], check=True, timeout=300)


def _still(folder: Path, width: int, height: int, rate: str, seconds: float) -> list[str]:
    """ffmpeg input arguments for the quadrant picture as a video of `seconds` at `rate` frames/s."""
    still = folder / f"quadrants-{width}x{height}.png"
    quadrant_picture(width, height).save(still)
    return ["-loop", "1", "-framerate", rate, "-t", f"{seconds:g}", "-i", str(still)]


def _moving(width: int, height: int) -> str:
    """A small black square running along the middle line, so that consecutive frames differ (as a
    real video's do) and no quadrant's corner colour changes."""
    side = max(4, min(width, height) // 10)
    return (
        f"drawbox=x='mod(t*{width // 2},{max(1, width - side)})':y={(height - side) // 2}:"
        f"w={side}:h={side}:color=black:t=fill"
    )


def _sound(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-t", f"{seconds:g}", "-i", "sine=frequency=440:sample_rate=48000"]


@dataclass(frozen=True)
class MatrixInput:
    """One case: its file's suffix and content type, how it is made, and what the source is like."""

    suffix: str
    content_type: str
    make: Callable[[Path, Path], None]
    duration_s: float
    has_audio: bool


def _h264(
    out: Path, folder: Path, *, width: int, height: int, rate: str, seconds: float, audio: bool
) -> None:
    sound = _sound(seconds) if audio else []
    codecs = ["-c:a", "aac", "-b:a", "64k"] if audio else []
    ffmpeg(
        *_still(folder, width, height, rate, seconds), *sound, "-vf", _moving(width, height),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *codecs, "-shortest", str(out),
    )  # fmt: skip


def _hevc_rotated(out: Path, folder: Path) -> None:
    """HEVC in QuickTime, tagged hvc1 as iPhones write it: the pixels stored turned a quarter, and a
    display matrix that turns them back (what a phone held upright records)."""
    stored = folder / "stored.mov"
    # Stored turned 90 degrees anticlockwise (transpose=2); shown turned 90 degrees clockwise.
    ffmpeg(
        *_still(folder, 320, 180, "30", 2.0), *_sound(2.0), "-vf", _moving(320, 180) + ",transpose=2",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p",
        "-tag:v", "hvc1", "-c:a", "aac", "-shortest", str(stored),
    )  # fmt: skip
    # ffmpeg 5.1 writes `rotate` as the display matrix when the stream is copied; the matrix's angle is
    # anticlockwise, so -90 (270) says "turn clockwise a quarter to show".
    ffmpeg("-i", str(stored), "-c", "copy", "-metadata:s:v:0", "rotate=-90", str(out))


def _hevc_hdr(out: Path, folder: Path) -> None:
    """10-bit HEVC tagged HDR10: BT.2020 primaries, PQ transfer, mastering display and light levels."""
    params = (
        "log-level=error:hdr10=1:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):"
        "max-cll=1000,400"
    )
    ffmpeg(
        *_still(folder, 320, 180, "30", 2.0), *_sound(2.0), "-vf", _moving(320, 180),
        "-c:v", "libx265", "-preset", "ultrafast",
        "-x265-params", params, "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020",
        "-color_trc", "smpte2084", "-colorspace", "bt2020nc", "-tag:v", "hvc1", "-c:a", "aac",
        "-shortest", str(out),
    )  # fmt: skip


def _variable_rate(out: Path, folder: Path) -> None:
    """H.264 whose frames come at uneven intervals (a phone under load): 30 frames/s with two of
    every five dropped, written with their own timestamps."""
    ffmpeg(
        *_still(folder, 320, 180, "30", 3.0), *_sound(3.0),
        "-vf", _moving(320, 180) + ",select='not(between(mod(n\\,5)\\,1\\,2))'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-shortest", str(out),
    )  # fmt: skip


def _vp9(out: Path, folder: Path) -> None:
    ffmpeg(
        *_still(folder, 320, 180, "30", 2.0), *_sound(2.0), "-vf", _moving(320, 180),
        "-c:v", "libvpx-vp9", "-deadline",
        "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-shortest", str(out),
    )  # fmt: skip


def _av1(out: Path, folder: Path) -> None:
    ffmpeg(
        *_still(folder, 320, 180, "30", 2.0), *_sound(2.0), "-vf", _moving(320, 180),
        "-c:v", "libaom-av1", "-cpu-used", "8",
        "-row-mt", "1", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-shortest", str(out),
    )  # fmt: skip


MATRIX: dict[str, MatrixInput] = {
    "HEVC in QuickTime turned 90 degrees": MatrixInput(".mov", "video/quicktime", _hevc_rotated, 2.0, True),
    "10-bit HEVC HDR": MatrixInput(".mov", "video/quicktime", _hevc_hdr, 2.0, True),
    "4K60 H.264": MatrixInput(
        ".mp4",
        "video/mp4",
        lambda out, folder: _h264(out, folder, width=3840, height=2160, rate="60", seconds=1.0, audio=True),
        1.0,
        True,
    ),  # fmt: skip
    "variable frame rate": MatrixInput(".mp4", "video/mp4", _variable_rate, 3.0, True),
    "VP9 WebM": MatrixInput(".webm", "video/webm", _vp9, 2.0, True),
    "AV1 WebM": MatrixInput(".webm", "video/webm", _av1, 2.0, True),
    "no audio": MatrixInput(
        ".mp4",
        "video/mp4",
        lambda out, folder: _h264(out, folder, width=320, height=180, rate="30", seconds=2.0, audio=False),
        2.0,
        False,
    ),  # fmt: skip
    "portrait 9:16": MatrixInput(
        ".mp4",
        "video/mp4",
        lambda out, folder: _h264(out, folder, width=180, height=320, rate="30", seconds=2.0, audio=True),
        2.0,
        True,
    ),  # fmt: skip
    "2 s clip": MatrixInput(
        ".mp4",
        "video/mp4",
        lambda out, folder: _h264(out, folder, width=640, height=360, rate="25", seconds=2.0, audio=True),
        2.0,
        True,
    ),  # fmt: skip
    "100 s clip": MatrixInput(
        ".mp4",
        "video/mp4",
        lambda out, folder: _h264(out, folder, width=160, height=90, rate="10", seconds=100.0, audio=True),
        100.0,
        True,
    ),  # fmt: skip
}


def make_input(name: str, folder: Path) -> Path:
    """The file of case `name`, made in `folder` (once: an existing file is reused)."""
    case = MATRIX[name]
    out = folder / (name.replace(" ", "-").replace(":", "x") + case.suffix)
    if not out.exists():
        work = folder / (out.stem + "-work")
        work.mkdir(parents=True, exist_ok=True)
        case.make(out, work)
    return out


def first_frame(path: Path, *, at_s: float = 0.2) -> np.ndarray:
    """The picture of the video at `path` near its start, as ffmpeg shows it (display rotation
    applied), in RGB."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{at_s:g}", "-i", str(path), "-frames:v", "1",
         "-f", "image2pipe", "-c:v", "png", "pipe:1"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    from io import BytesIO

    return np.asarray(Image.open(BytesIO(done.stdout)).convert("RGB"), dtype=np.float64)


def quadrant_colours(picture: np.ndarray) -> list[tuple[float, float, float]]:
    """The mean colour near each quadrant's outer corner: top left, top right, bottom left, bottom right."""
    height, width = picture.shape[:2]
    dy, dx = max(1, height // 8), max(1, width // 8)
    corners = [
        picture[dy : 2 * dy, dx : 2 * dx],
        picture[dy : 2 * dy, width - 2 * dx : width - dx],
        picture[height - 2 * dy : height - dy, dx : 2 * dx],
        picture[height - 2 * dy : height - dy, width - 2 * dx : width - dx],
    ]
    return [tuple(float(c) for c in corner.reshape(-1, 3).mean(axis=0)) for corner in corners]  # type: ignore[misc]


def is_upright(picture: np.ndarray, *, tolerance: float = 60.0) -> bool:
    """Whether the picture shows the quadrants where they belong (within `tolerance` per channel; a
    tone-mapped picture is dimmer, so colours are compared after scaling each to its brightest)."""
    for found, expected in zip(quadrant_colours(picture), QUADRANTS, strict=True):
        peak = max(found) or 1.0
        scaled = [255 * channel / peak for channel in found]
        if max(abs(a - b) for a, b in zip(scaled, expected, strict=True)) > tolerance:
            return False
    return True
