"""MindAR's feature detector: difference-of-Gaussians extrema, pruned per region, localised and oriented.

The arithmetic follows MindAR 1.2.5 on the tfjs CPU backend step by step (float32 images, float64
intermediate sums rounded to float32 where MindAR stores a tensor), so the same pixels give the same
points. Each stage is a vectorised function over whole images or over all points at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

# Octaves are added while both sides are at least this many pixels, up to PYRAMID_MAX_OCTAVES.
PYRAMID_MIN_SIZE = 8
PYRAMID_MAX_OCTAVES = 5

# |DoG| below this (grey levels) is not an extremum worth keeping.
LAPLACIAN_THRESHOLD = 3.0
# Ratio of principal curvatures above which an extremum lies on an edge, not a corner.
EDGE_THRESHOLD = 4.0
EDGE_HESSIAN_THRESHOLD = (EDGE_THRESHOLD + 1) ** 2 / EDGE_THRESHOLD
# Hessians with a smaller determinant are treated as singular.
MIN_HESSIAN_DETERMINANT = 0.0001
# Extrema closer than this to the border (octave pixels) are dropped: the FREAK pattern reaches this far.
BORDER_MARGIN = 7

# The image is cut into BUCKETS_PER_SIDE^2 regions; each keeps its MAX_POINTS_PER_BUCKET strongest extrema.
BUCKETS_PER_SIDE = 10
MAX_POINTS_PER_BUCKET = 5

ORIENTATION_BINS = 36
ORIENTATION_SMOOTHING_PASSES = 5
# Weights of the circular [1 2 1]-like smoothing MindAR applies to orientation histograms.
SMOOTHING_SIDE_WEIGHT = 0.274068619061197
SMOOTHING_CENTRE_WEIGHT = 0.451862761877606
# The orientation window: a disc of radius GAUSSIAN_EXPANSION * REGION_EXPANSION octave pixels,
# weighted by a Gaussian of sigma GAUSSIAN_EXPANSION.
ORIENTATION_GAUSSIAN_EXPANSION = 3.0
ORIENTATION_REGION_EXPANSION = 1.5
# MindAR's constant for 1 / (2 pi), kept to its printed digits.
ONE_OVER_TWO_PI = 0.159154943091895

_BINOMIAL_ROW = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
_BLUR_BAND_ROWS = 128


@dataclass(frozen=True)
class ScaleSpace:
    """The Gaussian and difference-of-Gaussians pyramids of one image.

    Parameters:
        gaussian: per octave, the smoother of its two Gaussian images (float32); gradients and FREAK
            samples are read from it.
        dog: per octave, the difference of its two Gaussian images, first minus second (float32).
    """

    gaussian: list[np.ndarray]
    dog: list[np.ndarray]


@dataclass(frozen=True)
class Extrema:
    """Localised and oriented extrema, in octave pixel coordinates.

    Parameters:
        score: DoG value (sign: positive for maxima), float64.
        octave: octave index of each extremum.
        y, x: sub-pixel position in the octave's image, float32.
        angle: dominant gradient orientation in radians, float32.
    """

    score: np.ndarray
    octave: np.ndarray
    y: np.ndarray
    x: np.ndarray
    angle: np.ndarray


def octave_count(width: int, height: int) -> int:
    """Number of octaves MindAR's detector builds for an image of this size."""
    count = 0
    w, h = float(width), float(height)
    while w >= PYRAMID_MIN_SIZE and h >= PYRAMID_MIN_SIZE:
        w, h = w / 2, h / 2
        count += 1
        if count == PYRAMID_MAX_OCTAVES:
            break
    return count


def binomial_blur(image: np.ndarray) -> np.ndarray:
    """The separable [1 4 6 4 1]^2 / 256 filter with replicated borders, rounded to float32 after each pass.

    MindAR sums each pass in float64 and stores float32. For a uint8 image every partial sum is an
    integer below 2^24, so float32 arithmetic is exact and cheaper. For a float32 image the products of
    pixels and the small integer taps are exact in float64, so the summation order does not matter.
    """
    if image.dtype == np.uint8:
        sums = cv2.sepFilter2D(
            image, cv2.CV_32F, _BINOMIAL_ROW, _BINOMIAL_ROW, borderType=cv2.BORDER_REPLICATE
        )
        return np.multiply(sums, np.float32(1.0 / 256.0), dtype=np.float32)
    # Float64 temporaries are made a band of rows at a time, so memory stays near the image's own size.
    height = image.shape[0]
    blurred = np.empty(image.shape, dtype=np.float32)
    for top in range(0, height, _BLUR_BAND_ROWS):
        bottom = min(top + _BLUR_BAND_ROWS, height)
        rows = np.clip(np.arange(top - 2, bottom + 2), 0, height - 1)
        band = image[rows].astype(np.float64)
        horizontal = cv2.filter2D(band, cv2.CV_64F, _BINOMIAL_ROW[None, :], borderType=cv2.BORDER_REPLICATE)
        horizontal = horizontal.astype(np.float32).astype(np.float64)
        # The two halo rows above and below make the vertical pass exact inside the band.
        vertical = cv2.filter2D(
            horizontal, cv2.CV_64F, _BINOMIAL_ROW[:, None], borderType=cv2.BORDER_REPLICATE
        )
        blurred[top:bottom] = vertical[2:-2] / 256.0
    return blurred


def halve(image: np.ndarray) -> np.ndarray:
    """Average each 2 x 2 block (an odd last row or column is dropped), summing in float32 as MindAR does."""
    height, width = image.shape[0] // 2, image.shape[1] // 2
    quarter = np.float32(0.25)
    out = image[0 : 2 * height : 2, 0 : 2 * width : 2] * quarter
    out += image[1 : 2 * height : 2, 0 : 2 * width : 2] * quarter
    out += image[0 : 2 * height : 2, 1 : 2 * width : 2] * quarter
    out += image[1 : 2 * height : 2, 1 : 2 * width : 2] * quarter
    return out


def halved_at(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``halve(image)[rows, cols]`` computed for those pixels only (same float32 arithmetic)."""
    quarter = np.float32(0.25)
    top, left = 2 * rows, 2 * cols
    out = image[top, left] * quarter
    out += image[top + 1, left] * quarter
    out += image[top, left + 1] * quarter
    out += image[top + 1, left + 1] * quarter
    return out


def doubled_at(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The bilinear upsampling by two of ``image`` (pixel centres at 0.5 * i - 0.25, replicated borders)
    at pixels (rows, cols), rounded to float32.

    Separable float64 interpolation is exact for weights of 1/4 and 3/4, so it equals MindAR's 2-D
    weighted sum before the final rounding.
    """
    row0, row1, row_w0, row_w1 = _upsample_taps(rows, image.shape[0])
    col0, col1, col_w0, col_w1 = _upsample_taps(cols, image.shape[1])
    left = image[row0, col0].astype(np.float64) * row_w0 + image[row1, col0].astype(np.float64) * row_w1
    right = image[row0, col1].astype(np.float64) * row_w0 + image[row1, col1].astype(np.float64) * row_w1
    return (left * col_w0 + right * col_w1).astype(np.float32)


def _upsample_taps(
    index: np.ndarray, source_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    position = 0.5 * index.astype(np.float64) - 0.25
    lower = np.floor(position)
    upper = np.ceil(position)
    weight_lower = upper - position
    weight_upper = position - lower
    lower_index = np.clip(lower.astype(np.int64), 0, source_size - 1)
    upper_index = np.clip(upper.astype(np.int64), 0, source_size - 1)
    return lower_index, upper_index, weight_lower, weight_upper


def build_scale_space(image: np.ndarray) -> ScaleSpace:
    """Per octave a pair of images one binomial blur apart: the input blurred once, then for each further
    octave the previous octave's second image halved; the second image is the first blurred again."""
    count = octave_count(image.shape[1], image.shape[0])
    gaussian: list[np.ndarray] = []
    dog: list[np.ndarray] = []
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
    for octave in range(count):
        # Halving an image blurred twice already smooths it like a first blur at the coarser scale.
        first = binomial_blur(image) if octave == 0 else halve(gaussian[-1])
        second = binomial_blur(first)
        gaussian.append(second)
        first -= second  # the first image is needed only for the difference, which takes its place
        dog.append(first)
    return ScaleSpace(gaussian=gaussian, dog=dog)


def find_extrema(below: np.ndarray, level: np.ndarray, above: np.ndarray) -> np.ndarray:
    """DoG values at the 3x3x3 extrema of ``level`` that pass the contrast and edge tests, zero elsewhere.

    Parameters:
        below: DoG of the finer octave (twice the size of ``level``), float32.
        level: DoG of this octave, float32.
        above: DoG of the coarser octave (half the size), float32.
    """
    height, width = level.shape
    result = np.zeros_like(level)
    if height <= 2 * BORDER_MARGIN or width <= 2 * BORDER_MARGIN:
        return result
    # A 3x3x3 extremum is first of all an extremum of its own level: find those on the whole image,
    # then compare only them with the finer (halved) and coarser (doubled) neighbours.
    box = np.ones((3, 3), dtype=np.uint8)
    inner = (slice(BORDER_MARGIN, height - BORDER_MARGIN), slice(BORDER_MARGIN, width - BORDER_MARGIN))
    value = level[inner]
    level_max = cv2.dilate(level, box)[inner]
    level_min = cv2.erode(level, box)[inner]
    strong = np.abs(value) >= LAPLACIAN_THRESHOLD
    ys, xs = np.nonzero(strong & ((value >= level_max) | (value <= level_min)))
    ys += BORDER_MARGIN
    xs += BORDER_MARGIN
    centre32 = level[ys, xs]
    is_max = centre32 >= level_max[ys - BORDER_MARGIN, xs - BORDER_MARGIN]
    is_min = centre32 <= level_min[ys - BORDER_MARGIN, xs - BORDER_MARGIN]
    for dy, dx in itertools.product((-1, 0, 1), repeat=2):
        for neighbour in (halved_at(below, ys + dy, xs + dx), doubled_at(above, ys + dy, xs + dx)):
            is_max &= centre32 >= neighbour
            is_min &= centre32 <= neighbour
    extremum = is_max | is_min
    ys, xs = ys[extremum], xs[extremum]
    centre = level[ys, xs].astype(np.float64)
    dxx = (level[ys, xs + 1].astype(np.float64) + level[ys, xs - 1]) - 2.0 * centre
    dyy = (level[ys + 1, xs].astype(np.float64) + level[ys - 1, xs]) - 2.0 * centre
    dxy = 0.25 * (
        ((level[ys - 1, xs - 1].astype(np.float64) + level[ys + 1, xs + 1]) - level[ys - 1, xs + 1])
        - level[ys + 1, xs - 1]
    )
    det = dxx * dyy - dxy * dxy
    regular = np.abs(det) >= MIN_HESSIAN_DETERMINANT
    with np.errstate(divide="ignore", invalid="ignore"):
        edge_score = (dxx + dyy) * (dxx + dyy) / det
    # MindAR compares the absolute edge score, so saddle points (negative determinant) can pass.
    keep = regular & (np.abs(edge_score) < EDGE_HESSIAN_THRESHOLD)
    result[ys[keep], xs[keep]] = level[ys[keep], xs[keep]]
    return result


def prune_extrema(
    extrema_per_octave: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keep the strongest extrema of each of the 10 x 10 buckets, across octaves.

    ``extrema_per_octave[k]`` holds octave k + 1. MindAR first folds each 2 x 2 block into one value
    (preferring, in order, the pixel below, right, below-right, then the block's own corner) and encodes
    the position as a float32 ``1000 * location + value``; the score it ranks by is that code modulo
    1000, which this reproduces. Ties keep the earlier extremum (octave, then row, then column).

    Returns (score, octave, y, x) in MindAR's order: by bucket, strongest first within a bucket.
    """
    scores, octaves, ys, xs, buckets = [], [], [], [], []
    for index, extrema in enumerate(extrema_per_octave):
        height, width = extrema.shape[0] // 2, extrema.shape[1] // 2
        corner = extrema[0 : 2 * height : 2, 0 : 2 * width : 2]
        below = extrema[1 : 2 * height : 2, 0 : 2 * width : 2]
        right = extrema[0 : 2 * height : 2, 1 : 2 * width : 2]
        below_right = extrema[1 : 2 * height : 2, 1 : 2 * width : 2]
        location = np.where(below != 0, 1, np.where(right != 0, 2, np.where(below_right != 0, 3, 0)))
        value = np.where(
            location == 1, below, np.where(location == 2, right, np.where(location == 3, below_right, corner))
        )
        block_y, block_x = np.nonzero(value)
        loc = location[block_y, block_x]
        val = value[block_y, block_x].astype(np.float64)
        encoded = (np.where(val < 0, -1000.0, 1000.0) * loc + val).astype(np.float32).astype(np.float64)
        score = np.fmod(encoded, 1000.0)
        y = block_y * 2 + ((loc == 1) | (loc == 3))
        x = block_x * 2 + ((loc == 2) | (loc == 3))
        bucket_width = width * 2 / BUCKETS_PER_SIDE
        bucket_height = height * 2 / BUCKETS_PER_SIDE
        bucket = np.floor(y / bucket_height).astype(np.int64) * BUCKETS_PER_SIDE + np.floor(
            x / bucket_width
        ).astype(np.int64)
        scores.append(score)
        octaves.append(np.full(score.shape, index + 1, dtype=np.int64))
        ys.append(y.astype(np.int64))
        xs.append(x.astype(np.int64))
        buckets.append(bucket)
    if not scores:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0), empty, empty, empty
    score = np.concatenate(scores)
    octave = np.concatenate(octaves)
    y = np.concatenate(ys)
    x = np.concatenate(xs)
    bucket = np.concatenate(buckets)
    arrival = np.arange(score.size)
    order = np.lexsort((arrival, -np.abs(score), bucket))
    sorted_bucket = bucket[order]
    first_of_bucket = np.searchsorted(sorted_bucket, sorted_bucket, side="left")
    rank = np.arange(order.size) - first_of_bucket
    chosen = order[rank < MAX_POINTS_PER_BUCKET]
    return score[chosen], octave[chosen], y[chosen], x[chosen]


def localise(
    space: ScaleSpace, octave: np.ndarray, y: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel position from a quadratic fit of the DoG around each extremum (one Newton step).

    Returns float32 (y, x); a point whose Hessian is singular keeps its integer position.
    """
    patch = np.empty((y.size, 3, 3), dtype=np.float64)
    for level in np.unique(octave):
        members = np.nonzero(octave == level)[0]
        dog = space.dog[level]
        for dy in range(3):
            rows = np.clip(y[members] + dy - 1, 0, dog.shape[0] - 1)
            for dx in range(3):
                cols = np.clip(x[members] + dx - 1, 0, dog.shape[1] - 1)
                patch[members, dy, dx] = dog[rows, cols]
    grad_x = 0.5 * (patch[:, 1, 2] - patch[:, 1, 0])
    grad_y = 0.5 * (patch[:, 2, 1] - patch[:, 0, 1])
    dxx = (patch[:, 1, 2] + patch[:, 1, 0]) - 2 * patch[:, 1, 1]
    dyy = (patch[:, 2, 1] + patch[:, 0, 1]) - 2 * patch[:, 1, 1]
    dxy = 0.25 * (((patch[:, 0, 0] + patch[:, 2, 2]) - patch[:, 0, 2]) - patch[:, 2, 0])
    det = dxx * dyy - dxy * dxy
    with np.errstate(divide="ignore", invalid="ignore"):
        offset_x = (dyy * -grad_x + -dxy * -grad_y) / det
        offset_y = (-dxy * -grad_x + dxx * -grad_y) / det
    regular = np.abs(det) >= MIN_HESSIAN_DETERMINANT
    new_y = np.where(regular, y + offset_y, y)
    new_x = np.where(regular, x + offset_x, x)
    return new_y.astype(np.float32), new_x.astype(np.float32)


def _orientation_window() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (dy, dx) inside the orientation disc and their float32 Gaussian weights, in MindAR's order."""
    gaussian_scale = -1.0 / (2 * ORIENTATION_GAUSSIAN_EXPANSION * ORIENTATION_GAUSSIAN_EXPANSION)
    radius = ORIENTATION_GAUSSIAN_EXPANSION * ORIENTATION_REGION_EXPANSION
    reach = int(np.ceil(radius))
    offsets_y, offsets_x, weights = [], [], []
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            distance_square = dx * dx + dy * dy
            if distance_square <= radius * radius:
                t = distance_square * gaussian_scale
                # MindAR's truncated Taylor series for exp(t), kept because the weights must match its own.
                weight = (720 + t * (720 + t * (360 + t * (120 + t * (30 + t * (6 + t)))))) * 0.0013888888
                offsets_y.append(dy)
                offsets_x.append(dx)
                weights.append(weight)
    return (
        np.array(offsets_y, dtype=np.int64),
        np.array(offsets_x, dtype=np.int64),
        np.array(weights, dtype=np.float32).astype(np.float64),
    )


_WINDOW_Y, _WINDOW_X, _WINDOW_WEIGHT = _orientation_window()


def orientation_histograms(space: ScaleSpace, octave: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """36-bin gradient orientation histograms (float32) around each point, on the octave's second blur.

    Each gradient votes for its two nearest bins with linear weights, scaled by its magnitude and the
    window weight; votes are accumulated in MindAR's order (window offset by offset).
    """
    count = y.size
    row = np.trunc(y).astype(np.int64)
    col = np.trunc(x).astype(np.int64)
    grad_x = np.empty((count, _WINDOW_Y.size), dtype=np.float64)
    grad_y = np.empty_like(grad_x)
    for level in np.unique(octave):
        members = np.nonzero(octave == level)[0]
        image = space.gaussian[level]
        last_row, last_col = image.shape[0] - 1, image.shape[1] - 1
        ys = row[members, None] + _WINDOW_Y[None, :]
        xs = col[members, None] + _WINDOW_X[None, :]
        ys_c, xs_c = np.clip(ys, 0, last_row), np.clip(xs, 0, last_col)
        up, down = np.clip(ys - 1, 0, last_row), np.clip(ys + 1, 0, last_row)
        left, right = np.clip(xs - 1, 0, last_col), np.clip(xs + 1, 0, last_col)
        grad_y[members] = image[down, xs_c].astype(np.float64) - image[up, xs_c]
        grad_x[members] = image[ys_c, right].astype(np.float64) - image[ys_c, left]
    angle = np.arctan2(grad_y, grad_x) + np.pi
    fbin = (angle * ORIENTATION_BINS * ONE_OVER_TWO_PI).astype(np.float32).astype(np.float64)
    magnitude = (_WINDOW_WEIGHT[None, :] * np.sqrt(grad_x * grad_x + grad_y * grad_y)).astype(np.float32)
    magnitude = magnitude.astype(np.float64)
    lower_bin = np.floor(fbin - 0.5)
    upper_weight = (fbin - lower_bin) - 0.5
    lower_weight = -upper_weight + 1.0
    lower_index = np.mod(lower_bin.astype(np.int64), ORIENTATION_BINS)
    upper_index = np.mod(lower_bin.astype(np.int64) + 1, ORIENTATION_BINS)
    # bincount adds its weights in input order; ordering the votes by window offset first reproduces
    # MindAR's float64 summation order within every bin.
    first_bin = np.arange(count)[:, None] * ORIENTATION_BINS
    votes_bin = np.stack([first_bin + lower_index, first_bin + upper_index])  # (2, points, offsets)
    votes = np.stack([lower_weight * magnitude, upper_weight * magnitude])
    order = (2, 0, 1)  # offsets, then lower/upper, then points
    histogram = np.bincount(
        votes_bin.transpose(order).ravel(),
        weights=votes.transpose(order).ravel(),
        minlength=count * ORIENTATION_BINS,
    )
    return histogram.reshape(count, ORIENTATION_BINS).astype(np.float32)


def smooth_histograms(histograms: np.ndarray) -> np.ndarray:
    """Five passes of circular three-tap smoothing, each rounded to float32."""
    smoothed = histograms
    for _ in range(ORIENTATION_SMOOTHING_PASSES):
        h = smoothed.astype(np.float64)
        smoothed = (
            SMOOTHING_SIDE_WEIGHT * np.roll(h, 1, axis=1)
            + SMOOTHING_CENTRE_WEIGHT * h
            + SMOOTHING_SIDE_WEIGHT * np.roll(h, -1, axis=1)
        ).astype(np.float32)
    return smoothed


def dominant_angles(histograms: np.ndarray) -> np.ndarray:
    """Angle (radians, float32) of each histogram's peak, refined by a parabola through the peak bin and
    its two neighbours."""
    count = histograms.shape[0]
    peak = np.argmax(histograms, axis=1)
    points = np.arange(count)
    h = histograms.astype(np.float64)
    before = h[points, (peak - 1) % ORIENTATION_BINS]
    centre = h[points, peak]
    after = h[points, (peak + 1) % ORIENTATION_BINS]
    p10 = (peak - 1).astype(np.float64)
    p20 = peak.astype(np.float64)
    # With bins one apart the parabola's denominators are the constants 2, -2 and -1.
    d1, d2, d3 = 2.0, -2.0, -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = ((after - centre) / d1) - ((before - centre) / d2)
        a = np.where(np.isnan(a), 0.0, a)
        b = ((before - centre) + (a * (p20 * p20 - p10 * p10))) / d3
        fbin = -b / (2.0 * a)
    fbin = np.where(np.isnan(fbin), 0.0, fbin)
    angle = 2.0 * np.pi * (fbin + 0.5) / ORIENTATION_BINS - np.pi
    return angle.astype(np.float32)


def detect_extrema(image: np.ndarray) -> tuple[ScaleSpace, Extrema]:
    """Run the detector on one grey image (2-D uint8 or float): its scale space and its oriented extrema."""
    space = build_scale_space(image)
    per_octave = [
        find_extrema(space.dog[level - 1], space.dog[level], space.dog[level + 1])
        for level in range(1, len(space.dog) - 1)
    ]
    score, octave, row, col = prune_extrema(per_octave)
    y, x = localise(space, octave, row, col)
    angle = dominant_angles(smooth_histograms(orientation_histograms(space, octave, y, x)))
    return space, Extrema(score=score, octave=octave, y=y, x=x, angle=angle)
