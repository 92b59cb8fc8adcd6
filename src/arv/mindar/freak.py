"""FREAK binary descriptors as MindAR computes them: 37 rotated sample points, 666 pairwise comparisons."""

from __future__ import annotations

import numpy as np

from arv.mindar.detector import Extrema, ScaleSpace

# The sampling pattern: six rings of six points, outermost first, and the centre; unit radius.
# (The ring sigmas of the original FREAK are not used by MindAR: every point reads the same blur.)
# Two radii carry a seventh digit so that the coordinates, rounded to six decimals, are MindAR's.
_RING_RADII = (1.0, 0.9309692, 0.847306, 0.741094, 0.595502, 0.3627828)
# Each ring starts at this angle (degrees) and turns anticlockwise (in image axes) by 60 degrees per point;
# neighbouring rings are offset by 30 degrees.
_RING_START_DEGREES = (180.0, 90.0, 0.0, 270.0, 180.0, 90.0)
_RING_STEP_DEGREES = 60.0

# The pattern is stretched to this radius in octave pixels.
FREAK_EXPANSION_FACTOR = 7.0
# A comparison bit is set when the first sample is below the second plus this margin.
COMPARISON_MARGIN = 0.01
DESCRIPTOR_BITS = 666
DESCRIPTOR_BYTES = 84


def _pattern() -> np.ndarray:
    """(37, 2) float32 sample offsets (x, y), rounded to six decimals like MindAR's table."""
    points = []
    for radius, start in zip(_RING_RADII, _RING_START_DEGREES, strict=True):
        for k in range(6):
            theta = np.deg2rad(start + _RING_STEP_DEGREES * k)
            points.append((round(radius * np.cos(theta), 6), round(radius * np.sin(theta), 6)))
    points.append((0.0, 0.0))
    return np.array(points, dtype=np.float32)


FREAK_PATTERN = _pattern()
_FIRST, _SECOND = np.triu_indices(FREAK_PATTERN.shape[0], k=1)


def sample_pattern(space: ScaleSpace, extrema: Extrema) -> np.ndarray:
    """Bilinear samples (n, 37, float32) of each point's octave second blur at its rotated pattern."""
    pattern_x = FREAK_PATTERN[:, 0].astype(np.float64)
    pattern_y = FREAK_PATTERN[:, 1].astype(np.float64)
    angle = extrema.angle.astype(np.float64)
    with np.errstate(invalid="ignore"):
        cos = FREAK_EXPANSION_FACTOR * np.cos(angle)[:, None]
        sin = FREAK_EXPANSION_FACTOR * np.sin(angle)[:, None]
    ys = (extrema.y.astype(np.float64)[:, None] + pattern_x * sin) + pattern_y * cos
    xs = (extrema.x.astype(np.float64)[:, None] + pattern_x * cos) + pattern_y * -sin
    samples = np.zeros(ys.shape, dtype=np.float64)
    for level in np.unique(extrema.octave):
        members = np.nonzero(extrema.octave == level)[0]
        image = space.gaussian[level]
        samples[members] = _bilinear(image, ys[members], xs[members])
    # MindAR's kernels store NaN as 0 (only a non-finite angle can produce one).
    samples[np.isnan(samples)] = 0.0
    return samples.astype(np.float32)


def _bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    finite = np.isfinite(ys) & np.isfinite(xs)
    x0 = np.floor(np.where(finite, xs, 0.0))
    y0 = np.floor(np.where(finite, ys, 0.0))
    x1, y1 = x0 + 1, y0 + 1
    last_row, last_col = image.shape[0] - 1, image.shape[1] - 1
    r0 = np.clip(y0.astype(np.int64), 0, last_row)
    r1 = np.clip(y1.astype(np.int64), 0, last_row)
    c0 = np.clip(x0.astype(np.int64), 0, last_col)
    c1 = np.clip(x1.astype(np.int64), 0, last_col)
    f1 = image[r0, c0].astype(np.float64)
    f2 = image[r0, c1].astype(np.float64)
    f3 = image[r1, c0].astype(np.float64)
    f4 = image[r1, c1].astype(np.float64)
    value = (
        (x1 - xs) * (y1 - ys) * f1
        + (xs - x0) * (y1 - ys) * f2
        + (x1 - xs) * (ys - y0) * f3
        + (xs - x0) * (ys - y0) * f4
    )
    return np.where(finite, value, np.nan)


def freak_descriptors(samples: np.ndarray) -> np.ndarray:
    """(n, 84) uint8 descriptors: bit 7 - i of byte k is comparison 8k + i of the pattern's point pairs
    (i < j, in row order), set when sample i < sample j + 0.01; the last two bits of byte 83 unused."""
    values = samples.astype(np.float64)
    bits = values[:, _FIRST] < values[:, _SECOND] + COMPARISON_MARGIN
    padded = np.zeros((samples.shape[0], DESCRIPTOR_BYTES * 8), dtype=bool)
    padded[:, :DESCRIPTOR_BITS] = bits
    return np.packbits(padded, axis=1)


def descriptor_words(descriptors: np.ndarray) -> np.ndarray:
    """The 84 bytes of each descriptor as 21 big-endian unsigned 32-bit integers, the ``.mind`` encoding."""
    return np.ascontiguousarray(descriptors).view(">u4").astype(np.uint32)
