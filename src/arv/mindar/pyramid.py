"""The keyframe pyramid MindAR matches against: its scales and the box-filter resize that makes each level."""

from __future__ import annotations

import math

import cv2
import numpy as np

# The smallest keyframe has this many pixels on its shortest side.
MIN_KEYFRAME_SIDE = 100
# Successive keyframes differ in size by this factor (three levels per octave).
KEYFRAME_SCALE_STEP = 2.0 ** (1.0 / 3.0)
# A scale this close to 1 is replaced by 1 itself, so the first keyframe is the image unchanged.
FULL_SCALE_SNAP = 0.95


def js_round(value: float) -> int:
    """Round half towards positive infinity, like JavaScript's ``Math.round`` (Python rounds half to even)."""
    floor = math.floor(value)
    return int(floor + 1) if value - floor >= 0.5 else int(floor)


def keyframe_scales(width: int, height: int) -> list[float]:
    """Scales of the keyframes, largest first: 1, then down by 2^(1/3) until the shortest side is 100 px.

    The sequence is built from the smallest scale upwards with repeated multiplication, the way MindAR
    builds it, so the floating-point values (stored in the ``.mind`` file) are the same bits.
    """
    scale = MIN_KEYFRAME_SIDE / min(width, height)
    scales: list[float] = []
    while True:
        scales.append(scale)
        scale *= KEYFRAME_SCALE_STEP
        if scale >= FULL_SCALE_SNAP:
            break
    scales.append(1)
    scales.reverse()
    return scales


def summed_area_table(grey: np.ndarray) -> np.ndarray:
    """The (height + 1, width + 1) table of pixel sums above and left of each corner: int32 when the total
    fits, float64 (still exact) for larger images."""
    depth = cv2.CV_32S if grey.size * 255 < 2**31 else cv2.CV_64F
    return cv2.integral(np.ascontiguousarray(grey, dtype=np.uint8), sdepth=depth)


def resize_box(grey: np.ndarray, ratio: float, *, table: np.ndarray | None = None) -> np.ndarray:
    """Resize a uint8 grey image by ``ratio`` as MindAR does: each output pixel is the floor of the mean
    of the source pixels whose indexes round into it (a box filter, not an interpolation).

    Parameters:
        grey: 2-D uint8 array (height, width).
        ratio: output size / input size; the output is round(width * ratio) x round(height * ratio).
        table: ``summed_area_table(grey)``, when several sizes are made from one image.
    """
    src_height, src_width = grey.shape
    width = js_round(src_width * ratio)
    height = js_round(src_height * ratio)
    if ratio == 1:
        return np.ascontiguousarray(grey, dtype=np.uint8)
    if table is None:
        table = summed_area_table(grey)
    col_start, col_end = _box_bounds(width, ratio, src_width)
    row_start, row_end = _box_bounds(height, ratio, src_height)
    # Boxes are rectangles: take the column differences first, then the row differences of those.
    column_sums = np.take(table, col_end + 1, axis=1) - np.take(table, col_start, axis=1)
    sums = column_sums[row_end + 1] - column_sums[row_start]
    counts = (row_end - row_start + 1)[:, None] * (col_end - col_start + 1)[None, :]
    # An empty box (only when enlarging) gives NaN in MindAR, which its byte array stores as 0.
    means = np.floor(sums / np.maximum(counts, 1))
    return np.where(counts > 0, means, 0).astype(np.uint8)


def _box_bounds(size: int, ratio: float, src_size: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last source index (inclusive) that each of ``size`` output pixels averages."""
    index = np.arange(size + 1, dtype=np.float64)
    edges = _js_round_array(index / ratio)
    start = edges[:-1]
    end = np.minimum(edges[1:] - 1, src_size - 1)
    return start, end


def _js_round_array(values: np.ndarray) -> np.ndarray:
    floor = np.floor(values)
    return (floor + (values - floor >= 0.5)).astype(np.int64)
