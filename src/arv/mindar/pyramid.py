"""The keyframe pyramid MindAR matches against: its scales and the box-filter resize that makes each level."""

from __future__ import annotations

import math

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


def resize_box(grey: np.ndarray, ratio: float) -> np.ndarray:
    """Resize a uint8 grey image by ``ratio`` as MindAR does: each output pixel is the floor of the mean
    of the source pixels whose indexes round into it (a box filter, not an interpolation).

    Parameters:
        grey: 2-D uint8 array (height, width).
        ratio: output size / input size; the output is round(width * ratio) x round(height * ratio).
    """
    src_height, src_width = grey.shape
    width = js_round(src_width * ratio)
    height = js_round(src_height * ratio)
    if ratio == 1:
        return np.ascontiguousarray(grey, dtype=np.uint8)
    col_start, col_end = _box_bounds(width, ratio, src_width)
    row_start, row_end = _box_bounds(height, ratio, src_height)
    if ratio < 1:
        # Shrinking, the boxes tile the image (each starts where the previous ended), so sums over each
        # span of columns, then of rows, give the box sums without a full-size table. Dividing by the
        # box height, then by its width, floors exactly as dividing by the area does.
        used = grey[: row_end[-1] + 1, : col_end[-1] + 1]
        sums = np.add.reduceat(used, col_start, axis=1, dtype=np.uint32)
        sums = np.add.reduceat(sums, row_start, axis=0, dtype=np.uint32)
        sums //= (row_end - row_start + 1).astype(np.uint32)[:, None]
        sums //= (col_end - col_start + 1).astype(np.uint32)[None, :]
        return sums.astype(np.uint8)
    counts = (row_end - row_start + 1)[:, None] * (col_end - col_start + 1)[None, :]
    # Enlarging, some boxes are empty: MindAR's mean is then NaN, which its byte array stores as 0.
    table = np.zeros((src_height + 1, src_width + 1), dtype=np.int64)
    table[1:, 1:] = grey.astype(np.int64).cumsum(axis=0).cumsum(axis=1)
    column_sums = table[:, col_end + 1] - table[:, col_start]
    sums = column_sums[row_end + 1] - column_sums[row_start]
    return np.where(counts > 0, sums // np.maximum(counts, 1), 0).astype(np.uint8)


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
