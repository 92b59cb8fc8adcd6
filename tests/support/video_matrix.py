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

import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

# Quadrant colours, as the picture is meant to be seen: top left, top right, bottom left, bottom right.
QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))
# Bytes of an MP4 box header: a 32-bit size and a 4-letter kind.
_BOX_HEADER = 8


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
    """ffmpeg input arguments for the quadrant picture as a video of `seconds` at `rate` frames/s.

    The picture is decoded and converted to YUV once and its frame repeated (a looped image input
    would decode the PNG for every frame, which at 4K costs more than the encode)."""
    still = folder / f"quadrants-{width}x{height}.png"
    quadrant_picture(width, height).save(still)
    frames = round(float(Fraction(rate)) * seconds)
    source = (
        f"movie={_filter_path(still)},format=yuv420p,loop=loop={frames - 1}:size=1:start=0,"
        f"setpts=N/({rate}*TB),fps={rate}"
    )
    return ["-f", "lavfi", "-i", source]


def _filter_path(path: Path) -> str:
    """`path` as a filter option: the characters filter graphs treat as syntax escaped."""
    text = str(path)
    for char in "\\':,;[]=":
        text = text.replace(char, "\\\\" + char)
    return text


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


# ---- inputs beyond the matrix: files that pass the upload probe but that ffmpeg cannot finish ------


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", _BOX_HEADER + len(body), kind) + body


def _full_box(kind: bytes, flags: int, *payload: bytes) -> bytes:
    """An ISO full box (version 0): its flags, then its fields."""
    return _box(kind, struct.pack(">I", flags), *payload)


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The boxes between `start` and `end`: each box's kind, where it starts and where it ends."""
    position = start
    while position + _BOX_HEADER <= end:
        size, kind = struct.unpack(">I4s", data[position : position + _BOX_HEADER])
        yield kind, position, position + size
        position += size


def _descend(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Where the box at `path` (kinds from the level of `start`) starts and ends; the first match at
    each level."""
    inside = (start, len(data) if end is None else end)
    box = inside
    for kind in path:
        box = next((s, e) for k, s, e in _children(data, *inside) if k == kind)
        inside = (box[0] + _BOX_HEADER, box[1])
    return box


def _sample_table_of(data: bytes, handler: bytes) -> tuple[int, int]:
    """Where the `stbl` box of the first track whose handler is `handler` (b"vide", b"soun") lies."""
    moov_start, moov_end = _descend(data, [b"moov"])
    for kind, start, end in _children(data, moov_start + _BOX_HEADER, moov_end):
        if kind != b"trak":
            continue
        hdlr_start, _ = _descend(data, [b"mdia", b"hdlr"], start + _BOX_HEADER, end)
        if data[hdlr_start + 16 : hdlr_start + 20] == handler:
            return _descend(data, [b"mdia", b"minf", b"stbl"], start + _BOX_HEADER, end)
    raise ValueError(f"no {handler.decode()} track")


def frames_at_one_instant_mp4(folder: Path, *, frames: int = 100_000) -> Path:
    """A 2 s H.264 MP4 of `frames` pictures, all but the last shown at the same instant (its timestamps
    jump from 0 straight to the end): every picture has to be decoded, and none moves the output on,
    so ffmpeg works for minutes while its progress stays at 0 s.

    The pictures are one intra frame stored once, every sample of the file pointing at it, so the file
    is 4 bytes a frame (a few hundred kilobytes). The upload probe reads a 2 s, 1280 x 720 H.264 video.
    """
    out = folder / f"frames-at-one-instant-{frames}.mp4"
    if out.exists():
        return out
    one = folder / "one-intra-frame.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-frames:v", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(one),
    )  # fmt: skip
    data = one.read_bytes()
    table_start, table_end = _sample_table_of(data, b"vide")
    parts = {kind: data[s:e] for kind, s, e in _children(data, table_start + _BOX_HEADER, table_end)}
    # One sample: stsz's uniform size, or else its table's only entry.
    sample_size = (
        struct.unpack(">I", parts[b"stsz"][12:16])[0] or struct.unpack(">I", parts[b"stsz"][20:24])[0]
    )
    offset = struct.unpack(">I", parts[b"stco"][16:20])[0]
    picture = data[offset : offset + sample_size]
    timescale, duration = 1000, 2000
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")

    def moov(sample_offset: int) -> bytes:
        stbl = _box(
            b"stbl",
            parts[b"stsd"],
            # All samples but the last last no time at all; the last lasts the whole 2 s.
            _full_box(
                b"stts",
                0,
                struct.pack(">I", 2),
                struct.pack(">II", frames - 1, 0),
                struct.pack(">II", 1, duration),
            ),
            _full_box(b"stss", 0, struct.pack(">II", 1, 1)),
            _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
            _full_box(b"stsz", 0, struct.pack(">II", sample_size, frames)),
            _full_box(b"stco", 0, struct.pack(">I", frames), struct.pack(">I", sample_offset) * frames),
        )
        dinf = _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1), _full_box(b"url ", 1)))
        minf = _box(b"minf", _full_box(b"vmhd", 1, b"\0" * 8), dinf, stbl)
        mdhd = _full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
        hdlr = _full_box(b"hdlr", 0, b"\0" * 4, b"vide", b"\0" * 12, b"VideoHandler\0")
        tkhd = _full_box(
            b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, duration), b"\0" * 16, identity,
            struct.pack(">II", 1280 << 16, 720 << 16),
        )  # fmt: skip
        mvhd = _full_box(
            b"mvhd", 0, struct.pack(">IIII", 0, 0, timescale, duration), struct.pack(">IH", 0x10000, 0x100),
            b"\0" * 10, identity, b"\0" * 24, struct.pack(">I", 2),
        )  # fmt: skip
        return _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)))

    index_size = len(moov(0))
    out.write_bytes(ftyp + moov(len(ftyp) + index_size + _BOX_HEADER) + _box(b"mdat", picture))
    return out


def undecodable_sound_mov(folder: Path) -> Path:
    """A 2 s H.264 MOV whose sound is in a codec this ffmpeg has no decoder for: the AAC track's sample
    entry renamed `apac` (Apple's positional audio, which an iPhone records and ffmpeg 5 cannot
    decode) and its decoder configuration hidden. The picture decodes, so the upload probe keeps it;
    ffmpeg stops at once ("Decoder (codec none) not found")."""
    out = folder / "undecodable-sound.mov"
    if out.exists():
        return out
    plain = folder / "plain-sound.mov"
    _h264(plain, folder, width=320, height=180, rate="30", seconds=2.0, audio=True)
    data = bytearray(plain.read_bytes())
    table_start, table_end = _sample_table_of(bytes(data), b"soun")
    stsd_start, stsd_end = _descend(bytes(data), [b"stsd"], table_start + _BOX_HEADER, table_end)
    entry = stsd_start + 16  # past the stsd's header, flags and entry count
    assert data[entry + 4 : entry + 8] == b"mp4a", data[entry + 4 : entry + 8]
    data[entry + 4 : entry + 8] = b"apac"
    for name, hidden in ((b"esds", b"xsds"), (b"mp4a", b"apac")):
        where = data.find(name, entry + 8, stsd_end)
        while where >= 0:
            data[where : where + 4] = hidden
            where = data.find(name, where + 4, stsd_end)
    out.write_bytes(bytes(data))
    return out


def plain_mp4(folder: Path, *, width: int, height: int, seconds: float, rate: str = "30") -> Path:
    """An H.264 + AAC MP4 of the moving quadrant picture, made at x264's fastest (for tests that need a
    video of a given size or length, not a phone's quirks)."""
    out = folder / f"plain-{width}x{height}-{seconds:g}s-{rate.replace('/', 'over')}.mp4"
    if not out.exists():
        work = folder / (out.stem + "-work")
        work.mkdir(parents=True, exist_ok=True)
        _h264(out, work, width=width, height=height, rate=rate, seconds=seconds, audio=True)
    return out
