"""Loading a target image as a person sees the print, down to the grey pixels MindAR works on."""

from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from arv.mindar.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)
from arv.mindar.limits import DEFAULT_MAX_PIXELS, costly_kind, pixel_limit

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

# Shortest side, in pixels, below which an image is refused: MindAR's tracker follows the target at
# 128 px, and its matching pyramid goes down to 100 px; anything smaller has to be invented by enlarging.
MIN_SHORTEST_SIDE = 128
# Formats read; others Pillow could open (PSD, ICO, EPS, ...) are refused as unsupported.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"})
# What a transparent area looks like once printed: the paper, white.
PAPER_WHITE = 255
# The EXIF tag saying how the stored pixels are turned for display; values 5 to 8 turn by 90 degrees.
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURN_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Pictures are converted to grey this many pixels at a time (see _grey_from_pillow): the temporary
# copies of one band (RGBA, 16-bit sums for the flattening) take about 30 bytes per pixel, 30 MB.
BAND_PIXELS = 1 << 20
# Errors Pillow and its decoders raise on data that ends early or is corrupt.
_DAMAGED_DATA_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)

# Signatures of common files that are not raster images Pillow reads, to name them in the refusal.
_KNOWN_UNSUPPORTED = (
    (b"%PDF", "PDF documents"),
    (b"8BPS", "Photoshop (PSD) files"),
    (b"%!PS", "PostScript files"),
)
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF"}


def source_label(source: ImageSource, index: int) -> str:
    """A short name for an input in messages: the file name for paths, ``image N`` (1-based) otherwise."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return f"image {index + 1}"


def _unsupported_kind(head: bytes) -> str | None:
    """The kind of a recognisable non-raster file from its first bytes, or None."""
    for signature, kind in _KNOWN_UNSUPPORTED:
        if head.startswith(signature):
            return kind
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return f"{_HEIF_BRANDS[head[8:12]]} images"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<") and b"<svg" in head.lower():
        return "SVG (vector) images"
    return None


def _open(source: ImageSource, label: str) -> tuple[Image.Image, BinaryIO | None]:
    """Open the image lazily (header only); the file handle, if we opened one, is returned to close."""
    handle: BinaryIO | None = None
    if isinstance(source, (str, os.PathLike)):
        try:
            handle = open(source, "rb")  # noqa: SIM115  (closed by the caller after decoding)
        except OSError as error:
            raise NotAnImageError(
                f"cannot read the file ({error.strerror or error})", source=label
            ) from error
        stream: BinaryIO = handle
    else:
        stream = io.BytesIO(bytes(source))
    head = stream.read(1024)
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies below; Pillow's warning at its default limit is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as error:
        _close(handle)
        # Pillow refuses absurd sizes itself before we see the header; its message holds the count.
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        amount = f"{int(claimed.group(1)) / 1e6:.0f} MP" if claimed else "far too many pixels"
        raise ImageTooLargeError(
            f"the image claims {amount}, far more than can be decoded safely", source=label
        ) from error
    except UnidentifiedImageError as error:
        _close(handle)
        kind = _unsupported_kind(head)
        if kind:
            raise UnsupportedImageFormatError(
                f"{kind} are not supported; export the picture as JPEG, PNG or WebP", source=label
            ) from error
        if not head:
            raise NotAnImageError("the file is empty", source=label) from error
        raise NotAnImageError("not an image file (JPEG, PNG or WebP expected)", source=label) from error
    except _DAMAGED_DATA_ERRORS as error:
        _close(handle)
        raise TruncatedImageError(f"the file is truncated or damaged ({error})", source=label) from error
    if image.format not in SUPPORTED_FORMATS:
        _close(handle)
        raise UnsupportedImageFormatError(
            f"{image.format} images are not supported; export the picture as JPEG, PNG or WebP", source=label
        )
    return image, handle


def _close(handle: BinaryIO | None) -> None:
    if handle is not None:
        handle.close()


def _check_dimensions(width: int, height: int, *, max_pixels: int, label: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width} x {height} px ({width * height / 1e6:.1f} MP), "
            f"more than the limit of {max_pixels / 1e6:.1f} MP",
            source=label,
        )
    if min(width, height) < MIN_SHORTEST_SIDE:
        raise ImageTooSmallError(
            f"the image is only {width} x {height} px; a target needs at least {MIN_SHORTEST_SIDE} px "
            "on its shortest side",
            source=label,
        )


def _flatten_on_paper(rgba: np.ndarray) -> np.ndarray:
    """RGB of an RGBA array composited onto white paper, rounded to the nearest grey level."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    colour = rgba[..., :3].astype(np.uint16)
    # colour * alpha + white * (255 - alpha) never exceeds 255 * 255, so uint16 holds it.
    return ((colour * alpha + PAPER_WHITE * (255 - alpha) + 127) // 255).astype(np.uint8)


def grey_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """MindAR's grey: the floor of the mean of R, G and B, for an (H, W, 3) uint8 array."""
    total = rgb[..., 0].astype(np.uint16)
    total += rgb[..., 1]
    total += rgb[..., 2]
    return (total // 3).astype(np.uint8)


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _band_rows(width: int) -> int:
    """Rows per band so that a band holds about BAND_PIXELS pixels (at least one row)."""
    return max(1, BAND_PIXELS // max(width, 1))


def _grey_of_16_bit(image: Image.Image, *, peak: int | None) -> np.ndarray:
    """8-bit grey of a 16-bit (or 32-bit) grey band, scaled, not clipped (Pillow's conversion clips).

    `peak` is the brightest value of the whole picture for mode I, which is scaled down by it when it
    exceeds 16 bits.
    """
    wide = np.asarray(image).astype(np.int64)
    if peak is not None and peak > 65535:
        wide = wide * 65535 // peak
    return ((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)


def _grey_of_band(image: Image.Image, *, peak: int | None, cmyk: _CmykConverter | None) -> np.ndarray:
    """Grey pixels of a decoded Pillow image of any mode (a band of the picture), as it looks on paper.

    Every step is per pixel, so a picture converted band by band gives exactly the grey of the whole.
    """
    if _has_transparency(image):
        return grey_from_rgb(_flatten_on_paper(np.asarray(image.convert("RGBA"))))
    if image.mode == "L":
        return np.array(image, dtype=np.uint8)
    if image.mode.startswith("I;16") or image.mode == "I":
        return _grey_of_16_bit(image, peak=peak)
    if image.mode in ("1", "F"):
        return np.array(image.convert("L"), dtype=np.uint8)
    if image.mode == "CMYK":
        return grey_from_rgb(np.asarray(cmyk.to_rgb(image) if cmyk else image.convert("RGB")))
    return grey_from_rgb(np.asarray(image.convert("RGB")))


def _grey_from_pillow(image: Image.Image) -> np.ndarray:
    """Grey pixels of a decoded Pillow image of any mode, as the picture looks on paper.

    The picture is converted a band of rows at a time into one uint8 array, so the copies that the
    conversion makes (RGBA, 16-bit sums) are of one band, never of the whole picture.
    """
    width, height = image.size
    peak = None
    if image.mode == "I":
        peak = max(int(image.getextrema()[1]), 1)  # type: ignore[arg-type,index]
    cmyk = _CmykConverter.for_image(image) if image.mode == "CMYK" else None
    grey = np.empty((height, width), dtype=np.uint8)
    rows = _band_rows(width)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        band = image if (top, bottom) == (0, height) else image.crop((0, top, width, bottom))
        grey[top:bottom] = _grey_of_band(band, peak=peak, cmyk=cmyk)
    return grey


class _CmykConverter:
    """CMYK to RGB through the picture's embedded ICC profile (what a viewer shows), built once."""

    def __init__(self, transform: ImageCms.ImageCmsTransform) -> None:
        self._transform = transform

    @classmethod
    def for_image(cls, image: Image.Image) -> _CmykConverter | None:
        """The converter for the image's profile, or None for Pillow's formula (no or a broken profile)."""
        profile = image.info.get("icc_profile")
        if not profile:
            return None
        try:
            transform = ImageCms.buildTransform(
                ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                ImageCms.createProfile("sRGB"),
                "CMYK",
                "RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            return None  # a broken profile: fall back to the plain conversion
        return cls(transform)

    def to_rgb(self, image: Image.Image) -> Image.Image:
        try:
            # Not in place, so applyTransform returns the new image.
            return cast("Image.Image", ImageCms.applyTransform(image, self._transform))
        except (ImageCms.PyCMSError, OSError, ValueError):
            return image.convert("RGB")  # a profile that cannot convert these pixels: Pillow's formula


def _grey_from_array(array: np.ndarray, *, max_pixels: int, label: str) -> np.ndarray:
    """Grey pixels of an image given as an array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3):
        raise NotAnImageError(
            f"an image array must be uint8 or uint16 of shape (H, W), (H, W, 3) or (H, W, 4), "
            f"not {array.dtype} {array.shape}",
            source=label,
        )
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        raise NotAnImageError(f"an image array needs 1, 3 or 4 channels, not {array.shape[2]}", source=label)
    _check_dimensions(array.shape[1], array.shape[0], max_pixels=max_pixels, label=label)
    if array.ndim == 2 and array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    # Band by band, like a decoded picture: the wide copies are of one band at a time.
    height, width = array.shape[:2]
    grey = np.empty((height, width), dtype=np.uint8)
    rows = _band_rows(width)
    for top in range(0, height, rows):
        band = array[top : top + rows]
        if band.dtype == np.uint16:
            band = ((band.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        if band.ndim == 2:
            grey[top : top + rows] = band
        elif band.shape[2] == 1:
            grey[top : top + rows] = band[..., 0]
        elif band.shape[2] == 4:
            grey[top : top + rows] = grey_from_rgb(_flatten_on_paper(band))
        else:
            grey[top : top + rows] = grey_from_rgb(band)
    return grey


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8) of a loaded image; 1 when it has none or it cannot be read."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (*_DAMAGED_DATA_ERRORS, KeyError, TypeError):
        return 1  # unreadable EXIF: show the pixels as stored, like most viewers
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _as_shown(grey: np.ndarray, orientation: int) -> np.ndarray:
    """The grey pixels turned as ``ImageOps.exif_transpose`` turns the picture for this orientation.

    Turning the grey rather than the decoded picture moves one byte per pixel instead of up to four.
    """
    turned = {
        2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
        3: lambda a: a[::-1, ::-1],  # ROTATE_180
        4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
        5: lambda a: a.T,  # TRANSPOSE
        6: lambda a: np.rot90(a, -1),  # ROTATE_270 (a quarter turn clockwise)
        7: lambda a: a.T[::-1, ::-1],  # TRANSVERSE
        8: lambda a: np.rot90(a, 1),  # ROTATE_90 (a quarter turn anticlockwise)
    }.get(orientation)
    return grey if turned is None else np.ascontiguousarray(turned(grey))


@dataclass(frozen=True)
class LoadedImage:
    """An image loaded for compiling.

    Parameters:
        grey: MindAR's grey pixels, 2-D uint8, orientation applied; a JPEG larger than the working
            side may have been decoded at a reduced scale.
        width, height: the picture's full size as shown (orientation applied), in pixels.
    """

    grey: np.ndarray
    width: int
    height: int


def load_grey_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    label: str = "image",
) -> np.ndarray:
    """Load an image as a person sees it and return MindAR's grey pixels at full size.

    The EXIF orientation is applied (the target looks like the photo as shown), transparency is
    flattened onto white paper, CMYK, 16-bit, grey, palette and WebP images are converted, and grey is
    floor((R + G + B) / 3) as in MindAR. Arrays are taken as they are (RGB channel order).

    Parameters:
        source: a path, the file's bytes, or a uint8/uint16 array (H, W), (H, W, 3) or (H, W, 4).
        max_pixels: refuse images whose header claims more pixels than this, before decoding.
        label: the name used in error messages.

    Raises:
        NotAnImageError, UnsupportedImageFormatError, ImageTooLargeError, TruncatedImageError,
        ImageTooSmallError: the image is refused; the message says why in one sentence.
    """
    return load_target_image(source, max_pixels=max_pixels, label=label).grey


def load_target_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    working_side: int | None = None,
    label: str = "image",
) -> LoadedImage:
    """Load an image as ``load_grey_image`` does, allowing a reduced-scale decode, with its full size.

    Parameters:
        working_side: if given, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8) as long as
            its shortest side stays at least this many pixels; the caller resizes the rest of the way.
        (the others as for ``load_grey_image``)
    """
    if isinstance(source, np.ndarray):
        grey = _grey_from_array(source, max_pixels=max_pixels, label=label)
        return LoadedImage(grey, width=grey.shape[1], height=grey.shape[0])
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise NotAnImageError(
            f"expected a path, bytes or a numpy array, not {type(source).__name__}", source=label
        )
    image, handle = _open(source, label)
    try:
        width, height = image.size
        _check_dimensions(width, height, max_pixels=max_pixels, label=label)
        limit = pixel_limit(image, max_pixels)
        if width * height > limit:
            raise ImageTooLargeError(
                f"the image is {width} x {height} px ({width * height / 1e6:.1f} MP), more than the "
                f"limit of {limit / 1e6:.1f} MP for a {costly_kind(image)}, which takes more memory to "
                "decode; save it as a baseline JPEG or PNG",
                source=label,
            )
        if working_side and image.format in ("JPEG", "MPO") and min(width, height) > working_side:
            factor = working_side / min(width, height)
            image.draft(image.mode, (math.ceil(width * factor), math.ceil(height * factor)))
        try:
            image.load()
        except _DAMAGED_DATA_ERRORS as error:
            raise TruncatedImageError(f"the file is truncated or damaged ({error})", source=label) from error
        orientation = _orientation(image)
        grey = _grey_from_pillow(image)
        # The decoded picture (up to 4 bytes per pixel) goes before the grey is turned.
        image.close()
        del image
        if orientation in _QUARTER_TURN_ORIENTATIONS:
            width, height = height, width
        return LoadedImage(_as_shown(grey, orientation), width=width, height=height)
    finally:
        _close(handle)
