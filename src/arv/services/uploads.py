"""Checking uploads at the door: images by their content, videos by their container signature."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from arv.mindar.limits import costly_kind, pixel_limit

# Formats a phone or a camera produces; anything else is refused before it is stored.
IMAGE_FORMATS = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "GIF": "image/gif",
}
IMAGE_SUFFIXES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/tiff": ".tif",
    "image/bmp": ".bmp",
    "image/gif": ".gif",
}


class UploadRefused(Exception):
    """An upload that is refused; `status_code` is the HTTP answer, the message says why."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class ImageUpload:
    content_type: str
    suffix: str
    width: int
    height: int


def check_image(data: bytes, *, max_pixels: int, field: str = "image") -> ImageUpload:
    """Accept `data` only if it is a whole, decodable photo of at most `max_pixels` pixels."""
    if not data:
        raise UploadRefused(f"the {field} file is empty")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype", b"<html")):
        raise UploadRefused(f"the {field} is SVG or HTML, not a photo: upload a JPEG, PNG or WebP image", 415)
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            fmt = image.format or ""
            width, height = image.size
            # The compiler's own limit for this image (lower for kinds costly to decode), so an image
            # accepted here is never refused by the marker job for its size.
            limit, kind = pixel_limit(image, max_pixels), costly_kind(image)
    except Image.DecompressionBombError as exc:
        raise UploadRefused(f"the {field} claims far too many pixels ({exc})", 413) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        fmt, width, height, limit, kind = "", 0, 0, max_pixels, ""
    if fmt not in IMAGE_FORMATS:
        raise UploadRefused(
            f"the {field} is not an image this service reads (JPEG, PNG, WebP, TIFF, BMP, GIF)", 415
        )
    if width * height > max_pixels:
        raise UploadRefused(
            f"the {field} claims {width} x {height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}; scale it down",
            413,
        )
    if width * height > limit:
        raise UploadRefused(
            f"the {field} claims {width} x {height} = {width * height} pixels, more than the limit of "
            f"{limit} for a {kind}, which takes more memory to decode; scale it down or save it as a "
            "baseline JPEG or PNG",
            413,
        )
    try:
        # The header said what it is; decoding all of it is the only way to know the file is whole.
        prove_whole(data, fmt)
    except (OSError, SyntaxError, ValueError, zlib.error, Image.DecompressionBombError) as exc:
        raise UploadRefused(f"the {field} file is truncated or damaged ({exc})") from exc
    content_type = IMAGE_FORMATS[fmt]
    return ImageUpload(content_type, IMAGE_SUFFIXES[content_type], width, height)


def prove_whole(data: bytes, fmt: str) -> None:
    """Decode all of the image's data without holding the picture at full size; raise if it is damaged.

    A JPEG is decoded at 1/8 scale (libjpeg still reads every scan, so a missing end is noticed), a
    PNG's pixel stream is inflated and its rows counted a slice at a time, so neither costs more than a
    few megabytes however large the picture (a 7700 x 7700 RGBA PNG is 237 MB decoded). Other formats
    are decoded whole, at most 4 bytes a pixel.
    """
    if fmt == "PNG" and _png_stream_is_whole(data):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            if fmt in ("JPEG", "MPO"):
                width, height = image.size
                image.draft(image.mode, (-(-width // 8), -(-height // 8)))
            image.load()


# Channels per pixel of each PNG colour type (grey, RGB, palette, grey + alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
# Bytes inflated at a time while checking a PNG's pixel stream.
_INFLATE_SLICE = 1 << 20
# Row filter types a PNG may use (none, sub, up, average, Paeth).
_PNG_FILTERS = frozenset(range(5))


def _png_rows(width: int, height: int, bits: int, channels: int, interlaced: bool) -> list[tuple[int, int]]:
    """(row count, bytes per row including the filter byte) of each pass of a PNG's pixel stream."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    rows = []
    for first_column, first_row, column_step, row_step in passes:
        columns = max(0, -(-(width - first_column) // column_step))
        count = max(0, -(-(height - first_row) // row_step))
        if columns and count:
            rows.append((count, 1 + -(-(columns * bits * channels) // 8)))
    return rows


def _png_stream_is_whole(data: bytes) -> bool:
    """True once the PNG's pixel stream inflates to every row with a valid filter; raise if it does not.

    False for a PNG this walk does not cover (an animated PNG): the caller decodes it instead.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    view = memoryview(data)
    position, header = 8, b""
    stream: list[memoryview] = []
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = view[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = bytes(chunk)
        elif kind == b"acTL":
            return False
        elif kind == b"IDAT":
            stream.append(chunk)
        elif stream or kind == b"IEND":
            break  # the pixel stream is one run of IDAT chunks
        position += 12 + length
    if len(header) < 13:
        raise SyntaxError("the PNG header chunk is missing")
    width, height, bits, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    if colour not in _PNG_CHANNELS:
        raise SyntaxError(f"unknown PNG colour type {colour}")
    inflater = zlib.decompressobj()
    chunks = iter(stream)
    inflated, offset = b"", 0
    for count, row_bytes in _png_rows(width, height, bits, _PNG_CHANNELS[colour], interlace == 1):
        for _ in range(count):
            while len(inflated) - offset < row_bytes:
                source = inflater.unconsumed_tail or next(chunks, b"")
                more = inflater.decompress(source, _INFLATE_SLICE)
                if not more and not source:
                    raise OSError("image file is truncated: the pixel data ends early")
                inflated, offset = inflated[offset:] + more, 0
            if inflated[offset] not in _PNG_FILTERS:
                raise SyntaxError(f"broken PNG pixel data (row filter {inflated[offset]})")
            offset += row_bytes
    return True


@dataclass(frozen=True)
class VideoUpload:
    content_type: str
    suffix: str


def sniff_video(data: bytes) -> VideoUpload:
    """The container of `data` from its signature: MP4, QuickTime or WebM; anything else is refused."""
    if not data:
        raise UploadRefused("the video file is empty")
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"qt  ":
            return VideoUpload("video/quicktime", ".mov")
        return VideoUpload("video/mp4", ".mp4")
    if len(data) >= 12 and data[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return VideoUpload("video/quicktime", ".mov")
    if data[:4] == b"\x1a\x45\xdf\xa3":
        # EBML header: Matroska; browsers play it when its DocType is webm.
        if b"webm" in data[:64]:
            return VideoUpload("video/webm", ".webm")
        raise UploadRefused(
            "the video is Matroska (MKV), which browsers do not play: upload MP4 or WebM", 415
        )
    raise UploadRefused("the video is not MP4, QuickTime (MOV) or WebM", 415)
