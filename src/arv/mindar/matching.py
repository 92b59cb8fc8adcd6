"""MindAR's matching data: one keyframe of FREAK feature points and their cluster trees per pyramid scale."""

from __future__ import annotations

from typing import Any

import numpy as np

from arv.mindar.clustering import build_cluster_tree
from arv.mindar.detector import detect_extrema
from arv.mindar.freak import descriptor_words, freak_descriptors, sample_pattern
from arv.mindar.pyramid import keyframe_scales, resize_box


def build_matching_keyframes(grey: np.ndarray) -> list[dict[str, Any]]:
    """The ``matchingData`` of one target: a keyframe per scale, largest first, ready for MessagePack.

    Parameters:
        grey: the target as a 2-D uint8 array (height, width), grey as MindAR computes it.

    Each keyframe has the keys and value types of a ``.mind`` version 2 keyframe: ``maximaPoints`` and
    ``minimaPoints`` (lists of ``{maxima, x, y, scale, angle, descriptors}``, positions in the
    keyframe's pixels, descriptors as 21 unsigned 32-bit integers), their cluster trees, ``width``,
    ``height`` and ``scale``. Numbers with an integral value are ints, as MindAR's encoder writes them.
    """
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grey image, got {grey.dtype} with shape {grey.shape}")
    height, width = grey.shape
    return [_keyframe(resize_box(grey, scale), scale) for scale in keyframe_scales(width, height)]


def _keyframe(image: np.ndarray, scale: float) -> dict[str, Any]:
    space, extrema = detect_extrema(image)
    descriptors = freak_descriptors(sample_pattern(space, extrema))
    del space
    words = descriptor_words(descriptors).tolist()
    octave_size = 2.0**extrema.octave
    # Octave pixel centres map back to the keyframe's pixel grid.
    x = (extrema.x.astype(np.float64) * octave_size + 2.0 ** (extrema.octave - 1) - 0.5).tolist()
    y = (extrema.y.astype(np.float64) * octave_size + 2.0 ** (extrema.octave - 1) - 0.5).tolist()
    angle = extrema.angle.astype(np.float64).tolist()
    point_scale = octave_size.astype(np.int64).tolist()
    maxima = (extrema.score > 0).tolist()
    points = [
        {
            "maxima": maxima[i],
            "x": _js_number(x[i]),
            "y": _js_number(y[i]),
            "scale": point_scale[i],
            "angle": _js_number(angle[i]),
            "descriptors": words[i],
        }
        for i in range(len(maxima))
    ]
    is_maximum = extrema.score > 0
    maxima = [point for point, keep in zip(points, is_maximum, strict=True) if keep]
    minima = [point for point, keep in zip(points, is_maximum, strict=True) if not keep]
    return {
        "maximaPoints": maxima,
        "minimaPoints": minima,
        "maximaPointsCluster": build_cluster_tree(descriptors[is_maximum]),
        "minimaPointsCluster": build_cluster_tree(descriptors[~is_maximum]),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "scale": _js_number(scale),
    }


def _js_number(value: float) -> int | float:
    """An int when the value is integral (JavaScript has one number type and its encoder writes those as
    integers), a float otherwise."""
    number = float(value)
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number
