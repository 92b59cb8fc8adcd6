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
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from arv.mindar.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

# Refuse images whose header claims more pixels than this: 50 MP holds a 48 MP phone photo, and decoding
# stays within memory. Checked before any pixel is decoded (decompression bombs claim billions).
DEFAULT_MAX_PIXELS = 50_000_000
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


def _grey_from_pillow(image: Image.Image) -> np.ndarray:
    """Grey pixels of a decoded Pillow image of any mode, as the picture looks on paper."""
    if _has_transparency(image):
        return grey_from_rgb(_flatten_on_paper(np.asarray(image.convert("RGBA"))))
    if image.mode == "L":
        return np.array(image, dtype=np.uint8)
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey: Pillow's own conversion to 8 bits clips instead of scaling.
        wide = np.asarray(image).astype(np.int64)
        if image.mode == "I" and wide.max(initial=0) > 65535:
            wide = wide * 65535 // max(int(wide.max()), 1)
        return ((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
    if image.mode in ("1", "F"):
        return np.array(image.convert("L"), dtype=np.uint8)
    if image.mode == "CMYK":
        return grey_from_rgb(np.asarray(_cmyk_to_rgb(image)))
    return grey_from_rgb(np.asarray(image.convert("RGB")))


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK through its embedded ICC profile when it has one (what a viewer shows), else Pillow's formula."""
    profile = image.info.get("icc_profile")
    if profile:
        try:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile: fall back to the plain conversion below
        if converted is not None:
            return converted
    return image.convert("RGB")


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
    if array.dtype == np.uint16:
        array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    if array.shape[2] == 1:
        return np.ascontiguousarray(array[..., 0])
    if array.shape[2] == 4:
        return grey_from_rgb(_flatten_on_paper(array))
    return grey_from_rgb(array)


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
        if working_side and image.format in ("JPEG", "MPO") and min(width, height) > working_side:
            factor = working_side / min(width, height)
            image.draft(image.mode, (math.ceil(width * factor), math.ceil(height * factor)))
        try:
            image.load()
        except _DAMAGED_DATA_ERRORS as error:
            raise TruncatedImageError(f"the file is truncated or damaged ({error})", source=label) from error
        try:
            turned = image.getexif().get(_EXIF_ORIENTATION, 1) in _QUARTER_TURN_ORIENTATIONS
            shown = ImageOps.exif_transpose(image)
        except (*_DAMAGED_DATA_ERRORS, KeyError, TypeError):
            turned, shown = False, image  # unreadable EXIF: show the pixels as stored, like most viewers
        if turned:
            width, height = height, width
        return LoadedImage(_grey_from_pillow(shown), width=width, height=height)
    finally:
        _close(handle)
