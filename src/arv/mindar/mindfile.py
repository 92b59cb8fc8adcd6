"""Reading and writing MindAR's ``.mind`` target files (format version 2, MessagePack)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from arv.mindar.errors import MindFileError

MIND_FORMAT_VERSION = 2

# Key order of each record, as MindAR writes it; the runtime reads by name, the order keeps our bytes
# comparable with MindAR's own files.
TARGET_KEYS = ("targetImage", "trackingData", "matchingData")
TRACKING_LEVEL_KEYS = ("data", "scale", "width", "height", "points")
KEYFRAME_KEYS = (
    "maximaPoints",
    "minimaPoints",
    "maximaPointsCluster",
    "minimaPointsCluster",
    "width",
    "height",
    "scale",
)
FEATURE_POINT_KEYS = ("maxima", "x", "y", "scale", "angle", "descriptors")

# What the stock MindAR.js 1.2.5 runtime reads of a target, the rest being for MindAR's compiler and
# its tools: its tracker follows one tracking level only (tracker.js, TRACKING_KEYFRAME = 1: the one
# whose shortest side is 128 px), and its matcher takes a keypoint's kind from the list holding it
# (matching.js reads `maxima` of the camera's points only). A compact file leaves out the rest.
RUNTIME_TRACKING_LEVEL = 1


def _js_number(value: Any) -> Any:
    """A number as JavaScript's MessagePack encoder writes it: integral values as integers."""
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if number.is_integer() and abs(number) <= 2**53 - 1:
            return int(number)
        return number
    if isinstance(value, np.integer):
        return int(value)
    return value


def _js_value(value: Any) -> Any:
    """Any nested value converted to what MindAR's encoder would have produced for it."""
    if isinstance(value, dict):
        return {key: _js_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_js_value(item) for item in value]
    if isinstance(value, np.ndarray):
        return [_js_value(item) for item in value.tolist()]
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return _js_number(value)


def _feature_point(point: dict, compact: bool) -> dict:
    descriptors = point["descriptors"]
    if isinstance(descriptors, np.ndarray):
        descriptors = descriptors.astype(np.uint32).tolist()
    else:
        descriptors = [int(value) for value in descriptors]
    kind = {} if compact else {"maxima": bool(point["maxima"])}
    return {
        **kind,
        "x": _js_number(point["x"]),
        "y": _js_number(point["y"]),
        "scale": _js_number(point["scale"]),
        "angle": _js_number(point["angle"]),
        "descriptors": descriptors,
    }


def _keyframe(keyframe: dict, compact: bool) -> dict:
    missing = [key for key in KEYFRAME_KEYS if key not in keyframe]
    if missing:
        raise ValueError(f"a matching keyframe lacks {', '.join(missing)}")
    return {
        "maximaPoints": [_feature_point(point, compact) for point in keyframe["maximaPoints"]],
        "minimaPoints": [_feature_point(point, compact) for point in keyframe["minimaPoints"]],
        "maximaPointsCluster": _js_value(keyframe["maximaPointsCluster"]),
        "minimaPointsCluster": _js_value(keyframe["minimaPointsCluster"]),
        "width": _js_number(keyframe["width"]),
        "height": _js_number(keyframe["height"]),
        "scale": _js_number(keyframe["scale"]),
    }


def _tracking_level(level: dict, read_by_runtime: bool = True) -> dict:
    if not read_by_runtime:
        # Kept in its place, so the level the runtime follows keeps its index, but empty.
        return {"data": b"", "scale": _js_number(level["scale"]), "width": 0, "height": 0, "points": []}
    return {
        "data": bytes(level["data"]),
        "scale": _js_number(level["scale"]),
        "width": _js_number(level["width"]),
        "height": _js_number(level["height"]),
        "points": [{"x": _js_number(point["x"]), "y": _js_number(point["y"])} for point in level["points"]],
    }


def encode_mind(targets: Sequence[dict], *, compact: bool = False) -> bytes:
    """The ``.mind`` file holding the given targets, byte for byte as MindAR's encoder writes it.

    A `compact` file holds only what the stock MindAR.js 1.2.5 runtime reads, and is no longer
    MindAR's bytes:
    - non-integral numbers are MessagePack's 32-bit floats instead of 64-bit ones (MindAR's decoder
      reads both as a JavaScript number, and a keypoint's position needs no more than a 32-bit
      float's seven digits);
    - keypoints carry no `maxima` flag: the list holding a keypoint says its kind;
    - the tracking levels but RUNTIME_TRACKING_LEVEL are written empty (scale kept, no pixels, no
      points, 0 x 0): the 256-px level is a sixth of a MindAR file, and only MindAR's compiler
      tools look at it.
    `decode_mind` reads both kinds.

    Parameters:
        targets: one dict per target with ``targetImage`` ({width, height}), ``trackingData`` (list of
            levels: data bytes, scale, width, height, points [{x, y}]) and ``matchingData`` (list of
            keyframes: maximaPoints, minimaPoints, maximaPointsCluster, minimaPointsCluster, width,
            height, scale). Numbers may be numpy scalars; integral floats are written as integers,
            as JavaScript does.
    """
    data_list = [
        {
            "targetImage": {
                "width": _js_number(target["targetImage"]["width"]),
                "height": _js_number(target["targetImage"]["height"]),
            },
            "trackingData": [
                _tracking_level(level, not compact or index == RUNTIME_TRACKING_LEVEL)
                for index, level in enumerate(target["trackingData"])
            ],
            "matchingData": [_keyframe(keyframe, compact) for keyframe in target["matchingData"]],
        }
        for target in targets
    ]
    return msgpack.packb(
        {"v": MIND_FORMAT_VERSION, "dataList": data_list}, use_bin_type=True, use_single_float=compact
    )


def decode_mind(data: bytes) -> list[dict]:
    """The targets of a ``.mind`` file (its ``dataList``), as plain dicts, lists, numbers and bytes.

    Raises:
        MindFileError: the data is not MessagePack, not format version 2, or lacks a target's fields.
    """
    try:
        content = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError, TypeError) as error:
        raise MindFileError(f"not a .mind file: the data is not valid MessagePack ({error})") from error
    if not isinstance(content, dict) or "v" not in content:
        raise MindFileError("not a .mind file: no format version")
    if content["v"] != MIND_FORMAT_VERSION:
        raise MindFileError(
            f"the .mind file has format version {content['v']}; only version {MIND_FORMAT_VERSION} is read"
        )
    targets = content.get("dataList")
    if not isinstance(targets, list):
        raise MindFileError("the .mind file has no target list")
    for index, target in enumerate(targets):
        missing = [key for key in TARGET_KEYS if not isinstance(target, dict) or key not in target]
        if missing:
            raise MindFileError(f"target {index} of the .mind file lacks {', '.join(missing)}")
    return targets
