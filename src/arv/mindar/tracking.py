"""MindAR's tracking data: the target at 256 and 128 px with the template points its tracker follows."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Shortest side, in pixels, of the two tracking levels MindAR stores; its tracker uses the second.
TRACKING_LEVEL_SIDES = (256, 128)

# Half-size of the square template (13 x 13 px) compared by normalised cross-correlation.
TEMPLATE_HALF_SIZE = 6
# A template whose pixels vary less than this (standard deviation, grey levels) is not considered.
CANDIDATE_MIN_SD = 5.0
# A template must also reach this standard deviation to be kept as a tracking point.
POINT_MIN_SD = 8.0
# Offsets farther than SIMILARITY_NEAR_RADIUS and within SIMILARITY_FAR_RADIUS (square) are searched
# for look-alikes: a point whose template reappears nearby cannot be tracked unambiguously.
SIMILARITY_FAR_RADIUS = 10
SIMILARITY_NEAR_RADIUS = 2
# Candidates more similar than this to something nearby are not distinctive.
MAX_NEARBY_SIMILARITY = 0.9
# Within SIMILARITY_NEAR_RADIUS a template must still resemble itself shifted a little (it is not
# noise) but not be identical to its neighbours (it is not flat along some direction).
MIN_CLOSE_SIMILARITY = 0.2
MAX_CLOSE_SIMILARITY = 0.99
# Fraction of the level's pixels kept as candidates, by gradient strength.
CANDIDATE_FRACTION = 0.02
# The gradient histogram has this many bins over [0, 1).
GRADIENT_HISTOGRAM_BINS = 1000


@dataclass(frozen=True)
class TrackingLevel:
    """One tracking level: the resized grey target and the points MindAR's tracker follows.

    Parameters:
        grey: the level's pixels, 2-D uint8, shortest side 256 or 128 px.
        scale: level size divided by target size.
        points: (N, 2) int array of (x, y) pixel positions in the level, in MindAR's order.
    """

    grey: np.ndarray
    scale: float
    points: np.ndarray

    @property
    def width(self) -> int:
        return int(self.grey.shape[1])

    @property
    def height(self) -> int:
        return int(self.grey.shape[0])

    def to_mind(self) -> dict:
        """The level as a ``.mind`` trackingData entry, keys in MindAR's order."""
        return {
            "data": self.grey.tobytes(),
            "scale": self.scale,
            "width": self.width,
            "height": self.height,
            "points": [{"x": int(x), "y": int(y)} for x, y in self.points],
        }


def build_tracking_levels(grey: np.ndarray) -> list[TrackingLevel]:
    """The two tracking levels of a grey target (shortest side 256 and 128 px), as MindAR builds them.

    Parameters:
        grey: the target, 2-D uint8 array (rows, columns), grey as MindAR computes it.
    """
    shortest = min(grey.shape)
    levels = []
    for side in TRACKING_LEVEL_SIDES:
        ratio = side / shortest
        level = resize_box_average(grey, ratio)
        levels.append(TrackingLevel(grey=level, scale=ratio, points=extract_tracking_points(level)))
    return levels


def _round_half_up(values: np.ndarray | float) -> np.ndarray:
    # JavaScript's Math.round rounds halves towards +infinity; numpy's rint rounds them to even.
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.int64)


def _box_bounds(source_length: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """First and last source index averaged into each destination index along one axis."""
    target_length = int(_round_half_up(source_length * ratio))
    index = np.arange(target_length + 1, dtype=np.float64)
    edges = _round_half_up(index / ratio)
    first = edges[:-1]
    last = np.minimum(edges[1:] - 1, source_length - 1)
    # Enlarging leaves some boxes empty; they take the pixel they start on instead of MindAR's zero.
    last = np.maximum(last, first)
    return first, last


def resize_box_average(grey: np.ndarray, ratio: float) -> np.ndarray:
    """Resize by averaging the box of source pixels under each destination pixel, rounding down.

    This is MindAR's resize: destination size round(size * ratio), destination pixel i covering source
    pixels round(i / ratio) .. round((i + 1) / ratio) - 1.

    Parameters:
        grey: 2-D uint8 array.
        ratio: destination size / source size.
    """
    rows_first, rows_last = _box_bounds(grey.shape[0], ratio)
    cols_first, cols_last = _box_bounds(grey.shape[1], ratio)
    # A float64 integral image holds these integer sums exactly.
    integral = cv2.integral(grey, sdepth=cv2.CV_64F)
    top, bottom = rows_first[:, None], rows_last[:, None] + 1
    left, right = cols_first[None, :], cols_last[None, :] + 1
    sums = integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]
    counts = (bottom - top) * (right - left)
    return np.floor(sums / counts).astype(np.uint8)


def _gradient_strength(grey: np.ndarray) -> np.ndarray:
    """MindAR's per-pixel gradient magnitude (float32), -1 on the one-pixel border."""
    image = grey.astype(np.int32)
    horizontal = image[:, 2:] - image[:, :-2]
    vertical = image[2:, :] - image[:-2, :]
    dx = (horizontal[:-2, :] + horizontal[1:-1, :] + horizontal[2:, :]) / 768.0
    dy = (vertical[:, :-2] + vertical[:, 1:-1] + vertical[:, 2:]) / 768.0
    strength = np.full(grey.shape, -1.0, dtype=np.float32)
    strength[1:-1, 1:-1] = np.sqrt((dx * dx + dy * dy) / 2)
    return strength


def _candidate_mask(strength: np.ndarray) -> np.ndarray:
    """Local maxima of gradient strength, keeping roughly the strongest CANDIDATE_FRACTION of pixels."""
    height, width = strength.shape
    centre = strength[1:-1, 1:-1]
    is_max = np.zeros(strength.shape, dtype=bool)
    is_max[1:-1, 1:-1] = (
        (centre > strength[1:-1, :-2])
        & (centre > strength[1:-1, 2:])
        & (centre > strength[:-2, 1:-1])
        & (centre > strength[2:, 1:-1])
    )
    scaled = strength.astype(np.float64) * 1000
    bins = np.clip(np.floor(scaled[is_max]), 0, GRADIENT_HISTOGRAM_BINS - 1).astype(np.int64)
    histogram = np.bincount(bins, minlength=GRADIENT_HISTOGRAM_BINS)
    kept_from_top = np.cumsum(histogram[::-1])
    over = np.nonzero(kept_from_top > CANDIDATE_FRACTION * width * height)[0]
    # The first bin (from the top) whose inclusion exceeds the budget is still kept.
    threshold = GRADIENT_HISTOGRAM_BINS - 1 - over[0] if over.size else -1
    return is_max & (scaled >= threshold)


class _TemplateStatistics:
    """Sums over the 13 x 13 template around every pixel, from integral images (exact integers)."""

    def __init__(self, grey: np.ndarray) -> None:
        self.grey = grey
        self.height, self.width = grey.shape
        size = 2 * TEMPLATE_HALF_SIZE + 1
        self.pixel_count = size * size
        integral, squared = cv2.integral2(grey, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        self.sums = self._window_sums(integral)
        self.square_sums = self._window_sums(squared)

    def _window_sums(self, integral: np.ndarray) -> np.ndarray:
        # Window sums centred on every pixel, with a margin of SIMILARITY_FAR_RADIUS so shifted centres
        # can be looked up without bounds checks; NaN wherever the template leaves the image.
        h, m = TEMPLATE_HALF_SIZE, SIMILARITY_FAR_RADIUS
        size = 2 * h + 1
        sums = np.full((self.height + 2 * m, self.width + 2 * m), np.nan)
        inner = (
            integral[size:, size:]
            - integral[:-size, size:]
            - integral[size:, :-size]
            + integral[:-size, :-size]
        )
        sums[m + h : m + self.height - h, m + h : m + self.width - h] = inner
        return sums

    def variation(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Summed squared deviation from the template mean at each centre; NaN outside the image."""
        m = SIMILARITY_FAR_RADIUS
        total = self.sums[ys + m, xs + m]
        mean = total / self.pixel_count
        return self.square_sums[ys + m, xs + m] - 2 * mean * total + self.pixel_count * mean * mean

    def similarities(self, ys: np.ndarray, xs: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """Normalised cross-correlation of each centre's template with the templates around it.

        Returns an (N, 21, 21) array indexed [n, dy + 10, dx + 10]; NaN where the shifted template
        leaves the image or is perfectly flat.
        """
        m = SIMILARITY_FAR_RADIUS
        cross = self._cross_sums(ys, xs)
        offsets = np.arange(-m, m + 1)
        rows = (ys + m)[:, None, None] + offsets[None, :, None]
        cols = (xs + m)[:, None, None] + offsets[None, None, :]
        shifted_sums = self.sums[rows, cols]
        shifted_square_sums = self.square_sums[rows, cols]
        template_means = (self.sums[ys + m, xs + m] / self.pixel_count).reshape(-1, 1, 1)
        covariance = cross - template_means * shifted_sums
        shifted_variation = shifted_square_sums - shifted_sums * shifted_sums / self.pixel_count
        with np.errstate(invalid="ignore", divide="ignore"):
            values = covariance / (norms.reshape(-1, 1, 1) * np.sqrt(shifted_variation))
        return np.where(shifted_variation == 0, np.nan, values)

    def _cross_sums(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Sum over each template of pixel times the pixel (dx, dy) away, for all |dx|, |dy| <= 10.

        One box filter of the image times its shifted self per offset; the sum at p for offset -d is
        the sum at p - d for offset d, so half the offsets suffice. Every value is an integer below
        2**24 (169 products of two grey levels), which float32 holds exactly.
        """
        h, m = TEMPLATE_HALF_SIZE, SIMILARITY_FAR_RADIUS
        size = 2 * h + 1
        margin = m + h
        image = np.pad(self.grey.astype(np.float32), margin)
        height, width = image.shape
        rows, cols = ys + margin, xs + margin
        sums = np.empty((2 * m + 1, 2 * m + 1, ys.size), dtype=np.float32)
        for dy in range(m + 1):
            for dx in range(-m if dy else 0, m + 1):
                # Products over the columns where both pixels exist; zero (the padding) elsewhere.
                first, last = max(0, -dx), width - max(0, dx)
                products = cv2.multiply(image[: height - dy, first:last], image[dy:, first + dx : last + dx])
                windows = cv2.boxFilter(
                    products, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT
                )
                sums[m + dy, m + dx] = windows[rows, cols - first]
                sums[m - dy, m - dx] = windows[rows - dy, cols - dx - first]
        return sums.transpose(2, 0, 1).astype(np.float64)


def extract_tracking_points(grey: np.ndarray) -> np.ndarray:
    """Distinctive template points of one tracking level, in the order MindAR selects them.

    A point is a local maximum of gradient strength whose 13 x 13 template varies enough, matches
    nothing within 10 px well (normalised cross-correlation below 0.9), is neither noise nor flat
    within 2 px, and is at least a tenth of the shortest side away from better points.

    Parameters:
        grey: the tracking level, 2-D uint8 array.

    Returns:
        (N, 2) int64 array of (x, y) pixel positions, most distinctive first.
    """
    height, width = grey.shape
    stats = _TemplateStatistics(grey)
    ys, xs = np.nonzero(_candidate_mask(_gradient_strength(grey)))
    variation = stats.variation(ys, xs)
    # NaN (template outside the image) compares false and drops out here.
    varied = variation / stats.pixel_count >= CANDIDATE_MIN_SD * CANDIDATE_MIN_SD
    ys, xs, norms = ys[varied], xs[varied], np.sqrt(variation[varied])

    offsets = np.arange(-SIMILARITY_FAR_RADIUS, SIMILARITY_FAR_RADIUS + 1)
    distance_squared = offsets[:, None] ** 2 + offsets[None, :] ** 2
    far = distance_squared > SIMILARITY_NEAR_RADIUS**2
    near = ~far & (distance_squared > 0)
    similarity = stats.similarities(ys, xs, norms)

    # Distinctiveness: the best match among the surrounding offsets; -1 when none can be compared.
    distinctiveness = np.fmax(np.nanmax(np.where(far, similarity, -np.inf), axis=(1, 2)), -1.0)
    distinctiveness = distinctiveness.astype(np.float32)
    chosen = distinctiveness < MAX_NEARBY_SIMILARITY
    ys, xs, norms, distinctiveness = ys[chosen], xs[chosen], norms[chosen], distinctiveness[chosen]
    close = similarity[chosen][:, near]

    # A candidate must vary enough and behave like a textured spot within 2 px.
    acceptable = norms / (2 * TEMPLATE_HALF_SIZE + 1) >= POINT_MIN_SD
    with np.errstate(invalid="ignore"):
        lowest = np.fmin(np.nanmin(np.where(np.isnan(close), np.inf, close), axis=1), 1.0)
        highest = np.fmax(np.nanmax(np.where(np.isnan(close), -np.inf, close), axis=1), -1.0)
    noisy = (lowest < MIN_CLOSE_SIMILARITY) & (lowest < distinctiveness.astype(np.float64))
    acceptable &= ~noisy & ~(highest > MAX_CLOSE_SIMILARITY)

    # Most distinctive first, ties in row-major order, each suppressing a square around it.
    order = np.lexsort((ys * width + xs, distinctiveness))
    order = order[acceptable[order]]
    exclusion = min(width, height) // 10
    template_span = (2 * TEMPLATE_HALF_SIZE + 1) * 3
    max_points = (width // exclusion) * (height // exclusion) + (width // template_span) * (
        height // template_span
    )
    free = np.ones((height, width), dtype=bool)
    points: list[tuple[int, int]] = []
    for index in order:
        if len(points) >= max_points:
            break
        y, x = int(ys[index]), int(xs[index])
        if not free[y, x]:
            continue
        points.append((x, y))
        free[max(y - exclusion, 0) : y + exclusion + 1, max(x - exclusion, 0) : x + exclusion + 1] = False
    return np.array(points, dtype=np.int64).reshape(-1, 2)
