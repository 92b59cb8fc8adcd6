"""MindAR image-target compiler: images in, ``.mind`` bytes MindAR.js tracks and a quality report out.

The public names are loaded on first use, so that ``arv.mindar.limits`` (which ARV's settings read)
can be imported without numpy and OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from arv.mindar.limits import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from arv.mindar.compiler import (
        DEFAULT_WORKING_SIDE,
        CompiledTargets,
        KeyframeReport,
        TargetReport,
        TrackingLevelReport,
        compile_targets,
    )
    from arv.mindar.errors import (
        ImageTooLargeError,
        ImageTooSmallError,
        MindARError,
        MindARInputError,
        MindFileError,
        NotAnImageError,
        TargetUntrackableError,
        TruncatedImageError,
        UnsupportedImageFormatError,
    )
    from arv.mindar.images import load_grey_image
    from arv.mindar.mindfile import MIND_FORMAT_VERSION, decode_mind, encode_mind

# The module each public name (other than DEFAULT_MAX_PIXELS) lives in.
_HOMES = {
    **dict.fromkeys(
        (
            "DEFAULT_WORKING_SIDE",
            "CompiledTargets",
            "KeyframeReport",
            "TargetReport",
            "TrackingLevelReport",
            "compile_targets",
        ),
        "arv.mindar.compiler",
    ),
    **dict.fromkeys(
        (
            "ImageTooLargeError",
            "ImageTooSmallError",
            "MindARError",
            "MindARInputError",
            "MindFileError",
            "NotAnImageError",
            "TargetUntrackableError",
            "TruncatedImageError",
            "UnsupportedImageFormatError",
        ),
        "arv.mindar.errors",
    ),
    "load_grey_image": "arv.mindar.images",
    **dict.fromkeys(("MIND_FORMAT_VERSION", "decode_mind", "encode_mind"), "arv.mindar.mindfile"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_WORKING_SIDE",
    "MIND_FORMAT_VERSION",
    "CompiledTargets",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "KeyframeReport",
    "MindARError",
    "MindARInputError",
    "MindFileError",
    "NotAnImageError",
    "TargetReport",
    "TargetUntrackableError",
    "TrackingLevelReport",
    "TruncatedImageError",
    "UnsupportedImageFormatError",
    "compile_targets",
    "decode_mind",
    "encode_mind",
    "load_grey_image",
]
