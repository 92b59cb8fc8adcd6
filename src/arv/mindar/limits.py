"""The largest picture the compiler decodes, in a module of its own so the settings can name it cheaply.

Importing this module loads neither numpy nor OpenCV (``arv.mindar`` loads its other modules on first
use), so ARV's settings take their default from it and the compiler's limit and ARV_MAX_IMAGE_PIXELS
are one number.
"""

from dataclasses import dataclass

# Refuse images whose header claims more pixels than this: 60 MP holds a 48 MP phone photo and a
# 7746 x 7746 poster, and any accepted image compiles within 600 MB (README, "Memory of a compile").
# Checked before any pixel is decoded (decompression bombs claim billions).
DEFAULT_MAX_PIXELS = 60_000_000


@dataclass(frozen=True)
class CostlyFormat:
    """A format whose decoding costs several times the memory of the picture itself.

    Parameters:
        name: the format as people write it, for messages.
        share: its pixel limit is the limit divided by this.
    """

    name: str
    share: int


# By Pillow's format name. Pillow reads WebP through libwebp's animation decoder, which keeps two more
# canvases and a copy besides the picture: 1.5 GB for a 60 MP WebP, 0.3 GB for a 15 MP one.
COSTLY_FORMATS = {"WEBP": CostlyFormat("WebP", 4)}


def pixel_limit(image_format: str | None, max_pixels: int) -> int:
    """The most pixels an image of this format (Pillow's name, e.g. ``WEBP``) may claim when the
    limit is `max_pixels`."""
    costly = COSTLY_FORMATS.get(image_format or "")
    return max_pixels // costly.share if costly else max_pixels
