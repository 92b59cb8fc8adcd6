"""MindAR image-target compiler: images in, ``.mind`` bytes MindAR.js tracks and a quality report out."""

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
from arv.mindar.images import DEFAULT_MAX_PIXELS, load_grey_image
from arv.mindar.mindfile import MIND_FORMAT_VERSION, decode_mind, encode_mind

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
