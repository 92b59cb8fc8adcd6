"""The largest picture the compiler decodes, in a module of its own so the settings can name it cheaply.

Importing this module loads neither numpy nor OpenCV (``arv.mindar`` loads its other modules on first
use), so ARV's settings take their default from it and the compiler's limit and ARV_MAX_IMAGE_PIXELS
are one number. Formats that cost more memory a pixel to decode than the limit was measured for are
held to a proportionally lower pixel count, the same at upload and in the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# Refuse images whose header claims more pixels than this: 60 MP holds a 48 MP phone photo and a
# 7746 x 7746 poster, and any accepted image compiles within 600 MB (README, "Memory of a compile").
# Checked before any pixel is decoded (decompression bombs claim billions).
DEFAULT_MAX_PIXELS = 60_000_000
# Bytes a pixel that decoding may cost at the full limit: a progressive JPEG's coefficients for three
# components at full resolution (2 bytes each), more than the 4 bytes of a decoded RGBA picture.
FULL_LIMIT_DECODE_COST = 6
# Pillow reads WebP through libwebp's animation decoder, which keeps two more canvases and a copy of
# the picture besides Pillow's own: about 24 bytes a pixel (1.5 GB for a 60 MP WebP).
WEBP_DECODE_COST = 24
# A decoded picture in Pillow: 4 bytes a pixel for RGB, RGBA, CMYK and 32-bit modes.
PICTURE_DECODE_COST = 4


def decode_cost(image: Image.Image) -> float:
    """Bytes a pixel that decoding the opened (not yet loaded) image costs at most.

    A progressive JPEG keeps every coefficient of every component (2 bytes each) whatever scale it
    is decoded at; a sequential one is decoded a row of blocks at a time.
    """
    if image.format == "WEBP":
        return WEBP_DECODE_COST
    layers = getattr(image, "layer", None)
    if image.format in ("JPEG", "MPO") and image.info.get("progressive") and layers:
        widest = max(layer[1] for layer in layers) * max(layer[2] for layer in layers)
        return 2 * sum(layer[1] * layer[2] for layer in layers) / widest
    return PICTURE_DECODE_COST


def pixel_limit(image: Image.Image, max_pixels: int) -> int:
    """The most pixels this opened image may claim when the limit is `max_pixels`: the limit itself,
    or less for a format that costs more than FULL_LIMIT_DECODE_COST bytes a pixel to decode."""
    cost = decode_cost(image)
    return max_pixels if cost <= FULL_LIMIT_DECODE_COST else int(max_pixels * FULL_LIMIT_DECODE_COST / cost)


def costly_kind(image: Image.Image) -> str:
    """How to name the opened image's kind in a refusal for its size, e.g. ``WebP`` or ``progressive
    CMYK JPEG``."""
    if image.format == "WEBP":
        return "WebP"
    return f"progressive {image.mode} JPEG"
