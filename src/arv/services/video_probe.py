"""Probing a video upload with ffprobe before it is accepted: what it is, and whether it is one to keep.

The container signature (arv.services.uploads.sniff_video) says which family the file claims to be;
ffprobe then has to read it as that family, with a picture, a known duration within the limit and
dimensions a phone can show. Anything else is refused before a byte of it is stored.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from arv.services.uploads import UploadRefused, VideoUpload, sniff_video

# Bytes of a file's start that say which container it claims to be (arv.services.uploads.sniff_video).
SNIFF_BYTES = 64
# Longest side a video may declare, in pixels: 8K (7680 x 4320) fits, a crafted header does not.
MAX_VIDEO_SIDE = 8192
# ffprobe's JSON for a real upload is a few kilobytes; more than this is a file built to flood it.
MAX_PROBE_OUTPUT_BYTES = 1 << 20
MAX_STREAMS = 16
# What ffprobe names each container family that sniff_video lets in.
_FAMILY_FORMATS = {
    "video/mp4": "mov,mp4,m4a,3gp,3g2,mj2",
    "video/quicktime": "mov,mp4,m4a,3gp,3g2,mj2",
    "video/webm": "matroska,webm",
}
# The media types of the videos accepted (what a file picker may offer).
VIDEO_CONTENT_TYPES = tuple(_FAMILY_FORMATS)
# Codecs browsers decode inside WebM; anything else in a WebM is Matroska dressed as WebM.
_WEBM_VIDEO_CODECS = frozenset({"vp8", "vp9", "av1"})
# Transfer characteristics of HDR video, as ffprobe names them: PQ and HLG.
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
# What a decoder says of a picture size past ffmpeg's own limit (it then reports 0 x 0).
_ABSURD_SIZE = re.compile(r"Picture size (\d+)x(\d+) is invalid")
# ISO base media brands of still images (AVIF, HEIF/HEIC): an `ftyp` header, but a photo.
_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
# Bytes of an MP4/QuickTime box header: a 32-bit size and a 4-letter kind.
_BOX_HEADER = 8
# What a box kind is made of: letters, digits, spaces and QuickTime's (c) sign.
_BOX_KIND = re.compile(rb"[A-Za-z0-9 \xa9]{4}")
# Boxes that stand at the top level of an MP4 or QuickTime file (ISO 14496-12, QuickTime's own).
_TOP_LEVEL_BOXES = frozenset(
    b"ftyp moov mdat free skip wide uuid meta pdin moof mfra styp sidx ssix prft emsg mvex pnot junk".split()
)


@dataclass(frozen=True)
class VideoProbe:
    """What ffprobe found in an accepted video; `record()` is what the video row keeps as `probe`."""

    content_type: str
    suffix: str
    format_name: str
    duration_s: float
    width: int
    height: int
    rotation: int
    frame_rate: float | None
    video_codec: str
    pix_fmt: str | None
    bit_depth: int | None
    audio_codec: str | None
    # How the picture's colours are coded: an HDR video has transfer `smpte2084` (PQ) or
    # `arib-std-b67` (HLG). None where the file does not say.
    color_transfer: str | None = None
    color_primaries: str | None = None
    color_space: str | None = None
    # Width of a stored pixel over its height as shown (anamorphic video), 1 for square pixels.
    pixel_aspect: float = 1.0

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: pixel aspect and display rotation applied."""
        width = max(1, round(self.width * self.pixel_aspect))
        return (self.height, width) if self.rotation in (90, 270) else (width, self.height)

    @property
    def is_hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS

    def record(self) -> dict[str, Any]:
        return asdict(self)


def probe_video(data: bytes, *, max_seconds: float, timeout_s: float) -> VideoProbe:
    """Check the upload `data` is a video this service keeps; raise UploadRefused saying why not.

    415: not a video, no picture, an image, or a container browsers do not play; 413: longer than
    `max_seconds` or absurd dimensions; 422: truncated or damaged; 503: no ffprobe on this host.
    """
    container = sniff_video(data)
    if data[4:8] == b"ftyp" and data[8:12] in _IMAGE_BRANDS:
        raise UploadRefused(
            f"the video is a still image ({data[8:12].decode()}), not a video: upload an MP4, MOV or "
            "WebM clip",
            415,
        )
    if container.content_type != "video/webm":
        _check_boxes(data)
    with tempfile.TemporaryDirectory(prefix="arv-probe-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        found, complaints = _run_ffprobe(path, timeout_s=timeout_s)
    return _judged(found, container, max_seconds=max_seconds, complaints=complaints)


def probe_file(path: Path, *, max_seconds: float, timeout_s: float) -> VideoProbe:
    """What ffprobe reads of a stored video at `path` (a worker's copy), judged as at upload;
    raises UploadRefused as `probe_video` does."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    found, complaints = _run_ffprobe(path, timeout_s=timeout_s)
    return _judged(found, sniff_video(head), max_seconds=max_seconds, complaints=complaints)


def _not_boxes(position: int) -> UploadRefused:
    return UploadRefused(
        f"the file starts like an MP4 or MOV video but byte {position} on is not part of one "
        "(a web page or another file behind a video header?): upload the video itself",
        415,
    )


def _check_boxes(data: bytes) -> None:
    """Refuse an MP4/QuickTime file whose top-level boxes run past its end (a cut-off upload)."""
    position = 0
    while position + _BOX_HEADER <= len(data):
        size = struct.unpack(">I", data[position : position + 4])[0]
        kind = data[position + 4 : position + 8]
        # Cameras add boxes of their own (Samsung's `sefd`, ...): a box of any 4-character kind is
        # let through while it fits in the file; anything else is not an MP4's.
        if not _BOX_KIND.fullmatch(kind):
            raise _not_boxes(position)
        if size == 1:
            if position + 16 > len(data):
                break
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
        elif size == 0:
            return  # the last box, to the end of the file
        if size < _BOX_HEADER:
            raise UploadRefused(
                f"the video file is damaged: a box at byte {position} has an impossible size ({size}); "
                "export it again from the camera or editor",
                422,
            )
        if position + size > len(data):
            if kind not in _TOP_LEVEL_BOXES:
                raise _not_boxes(position)
            raise UploadRefused(
                f"the video file is truncated: its '{kind.decode()}' box needs {position + size} bytes "
                f"but the file has {len(data)}; upload the whole file again",
                422,
            )
        position += size


def _run_ffprobe(path: Path, *, timeout_s: float) -> tuple[dict[str, Any], str]:
    """ffprobe's JSON of the file at `path`, and what it said on stderr (decoders complain there and
    carry on)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise UploadRefused(
            "this server cannot check videos yet: ffprobe (part of ffmpeg) is not installed where the API "
            "runs; the operator installs ffmpeg (Debian: apt-get install ffmpeg), then upload again",
            503,
        )
    command = [
        ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UploadRefused(
            f"the video could not be read within {timeout_s:g} s; export it again as a plain MP4",
            422,
        ) from exc
    if len(done.stdout) > MAX_PROBE_OUTPUT_BYTES:
        raise UploadRefused("the video declares far too many streams or tags to be a clip", 415)
    try:
        found = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError:
        found = {}
    complaints = done.stderr[:MAX_PROBE_OUTPUT_BYTES].decode(errors="replace")
    if done.returncode != 0 or not isinstance(found, dict) or "format" not in found:
        lines = complaints.strip().splitlines()
        gist = lines[-1].split(": ", 1)[-1][:200] if lines else f"ffprobe exit status {done.returncode}"
        raise UploadRefused(
            f"the file is not a video ffmpeg can read ({gist}): upload an MP4, MOV or WebM", 415
        )
    return found, complaints


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _rate(stream: dict[str, Any]) -> float | None:
    for key in ("avg_frame_rate", "r_frame_rate"):
        text = str(stream.get(key, ""))
        try:
            rate = Fraction(text)
        except (ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return round(float(rate), 3)
    return None


def _rotation(stream: dict[str, Any]) -> int:
    """Degrees the picture is turned when shown, as ffprobe reports the display matrix, in [0, 360)."""
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and side.get("side_data_type") == "Display Matrix":
            degrees = _number(side.get("rotation"))
            if degrees is not None:
                return round(degrees) % 360
    degrees = _number((stream.get("tags") or {}).get("rotate"))
    return round(degrees) % 360 if degrees is not None else 0


def _bit_depth(stream: dict[str, Any]) -> int | None:
    depth = stream.get("bits_per_raw_sample")
    if depth is not None and str(depth).isdigit():
        return int(depth)
    pix_fmt = str(stream.get("pix_fmt") or "")
    for bits in (10, 12, 16):
        if f"p{bits}" in pix_fmt:
            return bits
    return 8 if pix_fmt else None


def _too_large(width: int, height: int) -> UploadRefused:
    return UploadRefused(
        f"the video declares {width} x {height} pixels, more than {MAX_VIDEO_SIDE} on a side; "
        "export it at 4K or less",
        413,
    )


def _judged(
    found: dict[str, Any], container: VideoUpload, *, max_seconds: float, complaints: str
) -> VideoProbe:
    fmt = found.get("format") or {}
    format_name = str(fmt.get("format_name", ""))
    streams = [s for s in found.get("streams") or [] if isinstance(s, dict)]
    if format_name != _FAMILY_FORMATS[container.content_type]:
        raise UploadRefused(
            f"the file starts like {container.suffix[1:].upper()} but ffmpeg reads it as '{format_name}': "
            "upload an MP4, MOV or WebM video",
            415,
        )
    if len(streams) > MAX_STREAMS:
        raise UploadRefused(f"the video has {len(streams)} streams; a clip has a picture and a sound", 415)
    pictures = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]  # fmt: skip
    if not pictures:
        raise UploadRefused("the file has no picture (sound only, or a cover image): upload a video", 415)
    picture = pictures[0]
    codec = str(picture.get("codec_name") or "")
    if not codec:
        raise UploadRefused(
            "the video's picture is in a format ffmpeg does not know: export it as H.264", 415
        )
    if container.content_type == "video/webm" and codec not in _WEBM_VIDEO_CODECS:
        raise UploadRefused(
            f"the WebM file holds {codec} video, which browsers do not play in WebM: upload VP8, VP9 or "
            "AV1 in WebM, or an MP4",
            415,
        )
    if str(picture.get("nb_frames", "")) == "1":
        raise UploadRefused("the file holds a single picture, not a video: upload a clip", 415)
    width, height = int(picture.get("width") or 0), int(picture.get("height") or 0)
    if width <= 0 or height <= 0:
        # ffmpeg leaves a picture size it finds absurd (past its own limit) unset and says so.
        declared = _ABSURD_SIZE.search(complaints)
        if declared:
            raise _too_large(int(declared[1]), int(declared[2]))
        raise UploadRefused(
            "the video does not say how large its picture is; it is damaged: export it again", 422
        )
    if max(width, height) > MAX_VIDEO_SIDE:
        raise _too_large(width, height)
    if not picture.get("pix_fmt"):
        # ffprobe decodes the first frames to learn their pixel format: none decoded, none will play.
        raise UploadRefused(
            "the video's picture cannot be decoded (its frames are damaged): export it again", 422
        )
    duration = _number(fmt.get("duration")) or _number(picture.get("duration"))
    if not duration or duration <= 0:
        raise UploadRefused(
            "the video does not say how long it is (cut off, or a stream): export it again as a whole file",
            422,
        )
    if duration > max_seconds:
        raise UploadRefused(
            f"the video lasts {duration:.0f} s, longer than the limit of {max_seconds:g} s; shorten it",
            413,
        )
    sounds = [s for s in streams if s.get("codec_type") == "audio"]
    return VideoProbe(
        content_type=container.content_type,
        suffix=container.suffix,
        format_name=format_name,
        duration_s=round(duration, 3),
        width=width,
        height=height,
        rotation=_rotation(picture),
        frame_rate=_rate(picture),
        video_codec=codec,
        pix_fmt=picture.get("pix_fmt"),
        bit_depth=_bit_depth(picture),
        audio_codec=str(sounds[0].get("codec_name")) if sounds and sounds[0].get("codec_name") else None,
        color_transfer=_text(picture.get("color_transfer")),
        color_primaries=_text(picture.get("color_primaries")),
        color_space=_text(picture.get("color_space")),
        pixel_aspect=_pixel_aspect(picture.get("sample_aspect_ratio")),
    )


def _text(value: object) -> str | None:
    """A colour tag as ffprobe writes it; `unknown` and absent are both None."""
    text = str(value or "")[:32]
    return text if text and text != "unknown" else None


def _pixel_aspect(value: object) -> float:
    """ffprobe's `sample_aspect_ratio` ("4:3"; "0:1" or absent when unknown) as a number in [1/4, 4]."""
    try:
        ratio = Fraction(str(value).replace(":", "/"))
    except (ValueError, ZeroDivisionError):
        return 1.0
    return float(ratio) if Fraction(1, 4) <= ratio <= 4 else 1.0
