"""Checking uploads at the door: images by their content, videos by their container signature."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

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
    except Image.DecompressionBombError as exc:
        raise UploadRefused(f"the {field} claims far too many pixels ({exc})", 413) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        fmt, width, height = "", 0, 0
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
    try:
        # The header said what it is; decoding all of it is the only way to know the file is whole.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadRefused(f"the {field} file is truncated or damaged ({exc})") from exc
    content_type = IMAGE_FORMATS[fmt]
    return ImageUpload(content_type, IMAGE_SUFFIXES[content_type], width, height)


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
