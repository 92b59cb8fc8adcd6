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
    return [keyframe_of(resize_box(grey, scale), scale) for scale in keyframe_scales(width, height)]


def keyframe_of(
    image: np.ndarray,
    scale: float,
    to_keyframe: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    with_trees: bool = True,
) -> dict[str, Any]:
    """One keyframe: the feature points of `image`, a view of the target at `scale`.

    MindAR's own keyframes are the target reduced to `scale`. For another view of the target
    (arv.mindar.training's tilted ones), `to_keyframe` is the 3 x 3 map from the image's pixel
    indexes to the keyframe's (the target reduced to `scale`), and `size` that keyframe's width and
    height: points are stored where they lie on the target, which is what the matcher's pose needs,
    and those mapped outside it are dropped.
    """
    space, extrema = detect_extrema(image)
    descriptors = freak_descriptors(sample_pattern(space, extrema))
    del space
    octave_size = 2.0**extrema.octave
    # Octave pixel centres map back to the image's pixel grid.
    xs = extrema.x.astype(np.float64) * octave_size + 2.0 ** (extrema.octave - 1) - 0.5
    ys = extrema.y.astype(np.float64) * octave_size + 2.0 ** (extrema.octave - 1) - 0.5
    width, height = size or (int(image.shape[1]), int(image.shape[0]))
    inside = np.ones(len(xs), dtype=bool)
    if to_keyframe is not None:
        mapped = np.column_stack([xs, ys, np.ones(len(xs))]) @ to_keyframe.T
        xs, ys = mapped[:, 0] / mapped[:, 2], mapped[:, 1] / mapped[:, 2]
        inside = (xs >= 0) & (ys >= 0) & (xs <= width - 1) & (ys <= height - 1)
    words = descriptor_words(descriptors).tolist()
    x, y = xs.tolist(), ys.tolist()
    angle = extrema.angle.astype(np.float64).tolist()
    point_scale = octave_size.astype(np.int64).tolist()
    is_maximum = extrema.score > 0
    points = [
        {
            "maxima": bool(is_maximum[i]),
            "x": _js_number(x[i]),
            "y": _js_number(y[i]),
            "scale": point_scale[i],
            "angle": _js_number(angle[i]),
            "descriptors": words[i],
        }
        for i in range(len(x))
    ]
    maxima_rows = is_maximum & inside
    minima_rows = ~is_maximum & inside
    return {
        "maximaPoints": [p for p, keep in zip(points, maxima_rows, strict=True) if keep],
        "minimaPoints": [p for p, keep in zip(points, minima_rows, strict=True) if keep],
        "maximaPointsCluster": build_cluster_tree(descriptors[maxima_rows]) if with_trees else {},
        "minimaPointsCluster": build_cluster_tree(descriptors[minima_rows]) if with_trees else {},
        "width": width,
        "height": height,
        "scale": _js_number(scale),
    }


def _js_number(value: float) -> int | float:
    """An int when the value is integral (JavaScript has one number type and its encoder writes those as
    integers), a float otherwise."""
    number = float(value)
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number
