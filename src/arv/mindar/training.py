"""Trained keyframes: what a phone's views of the print find, chosen on simulated views of it.

MindAR's compiler makes one keyframe per scale of the photo seen face-on, with the strongest
detector responses in each. A phone sees the print tilted, small, blurred, dim and among clutter:
steep views change the descriptors so much that face-on keyframes miss them, while the largest
face-on keyframes are rarely what finds the print (a smaller keyframe finds it too, an octave
coarser) yet cost the most bytes.

Training, for each photo:
1. Candidates: MindAR's face-on keyframes, and keyframes of the print seen tilted by 55 degrees in
   four directions at two small scales (`tilted_keyframe`). A tilted keyframe stores each point
   where it lies on the face-on print, which is what MindAR's matcher needs for the pose: the
   `.mind` format and the stock MindAR.js 1.2.5 runtime are unchanged.
2. Simulated views (`simulated_views`): the 256-px crop MindAR's detector sees of a 640 x 480
   camera, the print tilted up to 60 degrees, from four crop widths down to under a third of one,
   any roll, partial views, focus blur, sensor noise, dim light, a cluttered desk. ARV's port of
   MindAR's detector runs on each, and each keyframe within reach of the view's scale is matched as
   MindAR's matcher does (Hamming distance, best against second best at 0.7). A match is correct
   when the keypoint, projected with the view's known homography, lands on the view point.
3. Keyframes whose removal costs the views almost nothing are dropped, largest first;
   then, in each keyframe kept, the points the views showed to be useless (never detected again
   nor matched) or misleading (matched wrongly more often than correctly).

The views come from fixed seeds, so the same photo always gives the same bytes. The rating
(`rate_findability`) uses views of another seed; benchmarks/detection.py uses views of its own
generator (tests/support/camera_views.py) that the compiler never sees.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from arv.mindar.clustering import build_cluster_tree
from arv.mindar.detector import detect_extrema
from arv.mindar.freak import DESCRIPTOR_BYTES, descriptor_words, freak_descriptors, sample_pattern
from arv.mindar.matching import keyframe_of
from arv.mindar.pyramid import resize_box

# MindAR's controller detects in a square crop of the camera frame: for a 640 x 480 camera, 256 px.
VIEW_SIDE = 256
# The controller's camera: a vertical field of view of 45 degrees over a 480-px-high frame.
FOCAL_LENGTH = 240.0 / math.tan(math.radians(22.5))
# The print's longer side in a view, in crop widths: from a close-up to a print across a table.
VIEW_SIZES = (0.3, 4.0)
MAX_TILT_DEGREES = 60.0

# MindAR's matcher: the best match must be this much closer than the second best (matching.js).
HAMMING_RATIO = 0.7
# It needs this many inliers of one homography to report a target.
MIN_INLIERS = 6
# A match is correct when the projected keypoint is within this many view pixels of the view point
# (MindAR's own inlier threshold is 3 px; the detector's localisation adds a little).
CORRECT_WITHIN_PX = 4.0
# Keypoints projected closer than this to a view's edge are not counted as in the view.
VIEW_MARGIN = 8
# A view is matched against the keyframes from this factor above its scale down to this factor
# below: MindAR's matcher also finds a print in a keyframe half or a quarter its size, where the
# view's points are an octave or two coarser.
KEYFRAME_REACH_ABOVE = 1.6
KEYFRAME_REACH_BELOW = 4.5
# A view counts as found with this many correct matches in one keyframe, more counting no further:
# the measure a keyframe's removal must not lower (by more than KEYFRAME_LOSS_ALLOWED of it).
STRONG_MATCHES = 12
KEYFRAME_LOSS_ALLOWED = 0.015
# A point is dropped when this many views showed it and none found it again or matched it, or when
# it was matched wrongly more than once beyond its correct matches.
UNSEEN_AFTER_VIEWS = 3
WRONG_BEYOND_CORRECT = 1
# A keyframe left with fewer points than this cannot gather MIN_INLIERS after Hough voting: dropped.
MIN_KEPT_POINTS = 10

DESCRIPTOR_WORDS = DESCRIPTOR_BYTES // 4

TRAINING_SEED = 2026_12_01
TRAINING_VIEWS = 64
RATING_SEED = 2025_06_01
RATING_VIEWS = 24


@dataclass(frozen=True)
class View:
    """One simulated camera crop: the grey pixels, and the homography from the target's edge
    coordinates (working pixels, (0, 0) its top-left corner) to the crop's pixel indexes."""

    grey: np.ndarray
    homography: np.ndarray
    # The point of the print at the crop's centre, in fractions of its width and height.
    centre: tuple[float, float]


@dataclass(frozen=True)
class _Points:
    """Feature points of a keyframe or a view: positions (pixel indexes), maxima flags, descriptors."""

    xy: np.ndarray
    maxima: np.ndarray
    words: np.ndarray  # (N, 21) uint32


def _pose_homography(width: int, height: int, rng: np.random.Generator, size: float) -> np.ndarray:
    """A perspective view of a print of `width` x `height` with its longer side `size` crop widths
    face-on, tilted up to MAX_TILT_DEGREES about a random in-plane axis, rolled at random, and its
    centre anywhere that keeps some of it in the crop."""
    tilt = math.radians(rng.uniform(0.0, MAX_TILT_DEGREES))
    axis_angle = rng.uniform(0.0, 2 * math.pi)
    tilt_axis = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0])
    roll = np.array([0.0, 0.0, rng.uniform(0.0, 2 * math.pi)])
    rotation = cv2.Rodrigues(tilt_axis * tilt)[0] @ cv2.Rodrigues(roll)[0]
    distance = FOCAL_LENGTH * max(width, height) / (size * VIEW_SIDE)
    # Up to half the print's on-screen size off the crop's centre: large prints become partial views.
    spread = 0.5 * min(size, 1.0) * VIEW_SIDE
    offset = rng.uniform(-spread, spread, size=2)
    centre = np.array([offset[0] * distance / FOCAL_LENGTH, offset[1] * distance / FOCAL_LENGTH, distance])
    translation = centre - rotation @ np.array([width / 2, height / 2, 0.0])
    camera = np.array(
        [[FOCAL_LENGTH, 0, VIEW_SIDE / 2 - 0.5], [0, FOCAL_LENGTH, VIEW_SIDE / 2 - 0.5], [0, 0, 1]]
    )
    return camera @ np.column_stack([rotation[:, 0], rotation[:, 1], translation])


def _desk(rng: np.random.Generator) -> np.ndarray:
    """What surrounds the print: smooth blobs of random brightness, the texture of a busy desk."""
    coarse = rng.uniform(40, 220, size=(6, 6)).astype(np.float32)
    fine = rng.uniform(-30, 30, size=(24, 24)).astype(np.float32)
    return cv2.resize(coarse, (VIEW_SIDE, VIEW_SIDE), interpolation=cv2.INTER_CUBIC) + cv2.resize(
        fine, (VIEW_SIDE, VIEW_SIDE), interpolation=cv2.INTER_LINEAR
    )


def _halvings(target: np.ndarray) -> list[np.ndarray]:
    """The target and its successive halves (Gaussian pyramid, float32), down to about 64 px."""
    levels: list[np.ndarray] = [target.astype(np.float32)]
    while max(levels[-1].shape) >= 128:
        levels.append(np.asarray(cv2.pyrDown(levels[-1])))
    return levels


def _render(levels: Sequence[np.ndarray], homography: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The crop a phone records: the print warped onto the desk, then blur, exposure and noise."""
    height, width = levels[0].shape
    corners = cv2.perspectiveTransform(
        np.array([[[0, 0], [width, 0], [width, height], [0, height]]], dtype=np.float64), homography
    )[0]
    longest_edge = max(np.linalg.norm(corners[(i + 1) % 4] - corners[i]) for i in range(4))
    # Drawn from the smallest half that still has a pixel per view pixel, so a far print does not
    # alias (a lens integrates light too).
    source = levels[0]
    for level in levels[1:]:
        if max(level.shape) < longest_edge:
            break
        source = level
    sy, sx = source.shape[0] / height, source.shape[1] / width
    from_index = np.array([[1 / sx, 0, 0.5 / sx], [0, 1 / sy, 0.5 / sy], [0, 0, 1]])
    size = (VIEW_SIDE, VIEW_SIDE)
    printed = cv2.warpPerspective(source, homography @ from_index, size, flags=cv2.INTER_LINEAR)
    cover = np.zeros((VIEW_SIDE, VIEW_SIDE), np.float32)
    cv2.fillConvexPoly(cover, np.rint(corners - 0.5).astype(np.int32), 1.0, cv2.LINE_AA)
    light = (_desk(rng) * (1 - cover) + printed * cover) / 255.0
    light = np.clip(light * rng.uniform(0.3, 1.2), 0, 1) ** rng.uniform(0.8, 1.3)
    if rng.random() < 0.6:
        light = np.asarray(cv2.GaussianBlur(light, (0, 0), rng.uniform(0.5, 2.5)))
    recorded = light * 255.0 + rng.uniform(1.0, 10.0) * rng.standard_normal(light.shape, dtype=np.float32)
    return np.clip(np.rint(recorded), 0, 255).astype(np.uint8)


def simulated_views(target: np.ndarray, count: int, seed: int) -> Iterator[View]:
    """`count` camera crops of `target` (2-D uint8), the same ones for the same seed."""
    rng = np.random.default_rng(seed)
    height, width = target.shape
    levels = _halvings(target)
    low, high = (math.log(v) for v in VIEW_SIZES)
    for _ in range(count):
        size = math.exp(rng.uniform(low, high))
        homography = _pose_homography(width, height, rng, size)
        inverse = np.linalg.inv(homography)
        centre = cv2.perspectiveTransform(np.array([[[VIEW_SIDE / 2, VIEW_SIDE / 2]]]), inverse)[0, 0]
        yield View(
            grey=_render(levels, homography, rng),
            homography=homography,
            centre=(float(centre[0] / width), float(centre[1] / height)),
        )


def _view_points(grey: np.ndarray) -> _Points:
    space, extrema = detect_extrema(grey)
    descriptors = freak_descriptors(sample_pattern(space, extrema))
    octave_size = 2.0**extrema.octave
    half = 2.0 ** (extrema.octave - 1) - 0.5
    xy = np.column_stack([extrema.x * octave_size + half, extrema.y * octave_size + half])
    return _Points(xy=xy, maxima=extrema.score > 0, words=_wide_words(descriptor_words(descriptors)))


def _keyframe_points(keyframe: dict[str, Any]) -> _Points:
    points = (*keyframe["maximaPoints"], *keyframe["minimaPoints"])
    # In the target's edge coordinates at working size, where the matcher puts them for the pose.
    xy = np.array([((p["x"] + 0.5) / keyframe["scale"], (p["y"] + 0.5) / keyframe["scale"]) for p in points])
    words = np.array([p["descriptors"] for p in points], dtype=np.uint32).reshape(
        len(points), DESCRIPTOR_WORDS
    )
    maxima = np.array([p["maxima"] for p in points], dtype=bool)
    return _Points(xy=xy.reshape(-1, 2), maxima=maxima, words=_wide_words(words))


def _wide_words(words: np.ndarray) -> np.ndarray:
    """21 32-bit words as 11 64-bit ones (the last half empty): half the XORs for a distance."""
    padded = np.zeros((len(words), DESCRIPTOR_WORDS + 1), np.uint32)
    padded[:, :DESCRIPTOR_WORDS] = words
    return padded.view(np.uint64)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between every row of `a` and every row of `b` (descriptor words)."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int32)


@dataclass
class _Tally:
    """Per keyframe point: views it was in, views it was detected again in (the view's point of the
    same kind nearest its projection, within CORRECT_WITHIN_PX), and its correct and wrong matches;
    per view and keyframe, the correct matches."""

    # The keyframes' points, as matched.
    points: list[_Points]
    visible: list[np.ndarray]
    redetected: list[np.ndarray]
    correct: list[np.ndarray]
    wrong: list[np.ndarray]
    # matches[v][k]: correct matches of view v in keyframe k (0 where k is out of the view's reach).
    matches: list[np.ndarray] = field(default_factory=list)
    # matched_points[v][k]: the keypoints (rows of keyframe k) view v matched correctly.
    matched_points: list[dict[int, np.ndarray]] = field(default_factory=list)

    @classmethod
    def empty(cls, points: Sequence[_Points]) -> _Tally:
        def zeros() -> list[np.ndarray]:
            return [np.zeros(len(p.xy), np.int32) for p in points]

        return cls(list(points), zeros(), zeros(), zeros(), zeros())

    def found(self, keyframes: np.ndarray) -> np.ndarray:
        """Per view: whether one of `keyframes` (indexes) gathers MIN_INLIERS correct matches."""
        if len(keyframes) == 0:
            return np.zeros(len(self.matches), bool)
        return np.array([m[keyframes].max() >= MIN_INLIERS for m in self.matches], dtype=bool)

    def strength(self, keyframes: np.ndarray) -> int:
        if len(keyframes) == 0:
            return 0
        return int(sum(min(int(m[keyframes].max()), STRONG_MATCHES) for m in self.matches))


def _local_scale(homography: np.ndarray, x: float, y: float) -> float:
    """View pixels per target pixel around target point (x, y): the root of the Jacobian's area."""
    w = homography[2] @ (x, y, 1.0)
    jacobian = (homography[:2, :2] - np.outer(homography[:2] @ (x, y, 1.0) / w, homography[2, :2])) / w
    return math.sqrt(abs(np.linalg.det(jacobian)))


def _tally(keyframes: Sequence[dict[str, Any]], views: Sequence[View]) -> _Tally:
    points = [_keyframe_points(kf) for kf in keyframes]
    scales = np.array([kf["scale"] for kf in keyframes], dtype=np.float64)
    width = keyframes[0]["width"] / keyframes[0]["scale"]
    height = keyframes[0]["height"] / keyframes[0]["scale"]
    tally = _Tally.empty(points)
    for view in views:
        found = _view_points(view.grey)
        scale = _local_scale(view.homography, view.centre[0] * width, view.centre[1] * height)
        reach = (scales <= scale * KEYFRAME_REACH_ABOVE) & (scales >= scale / KEYFRAME_REACH_BELOW)
        matches = np.zeros(len(keyframes), np.int32)
        tally.matched_points.append({})
        for index in np.flatnonzero(reach):
            matches[index] = _match_view(points[index], found, view.homography, tally, int(index))
        tally.matches.append(matches)
    return tally


def _match_view(keys: _Points, found: _Points, homography: np.ndarray, tally: _Tally, index: int) -> int:
    """Look for one keyframe's points in a view: where each is detected again, and how MindAR's
    matcher matches the view's points against the keyframe; count both in `tally`, and return how
    many matches were correct."""
    if len(keys.xy) == 0 or len(found.xy) == 0:
        return 0
    projected = cv2.perspectiveTransform(keys.xy[None].astype(np.float64), homography)[0]
    inside = np.all((projected >= VIEW_MARGIN) & (projected < VIEW_SIDE - VIEW_MARGIN), axis=1)
    tally.visible[index] += inside
    correct_total = 0
    correct_rows = []
    for polarity in (True, False):
        key_rows = np.flatnonzero(keys.maxima == polarity)
        query_rows = np.flatnonzero(found.maxima == polarity)
        if len(key_rows) == 0 or len(query_rows) == 0:
            continue
        # Detected again: the nearest view point of the same kind lies on the projected keypoint.
        # Keypoints outside the view are never near a view point (their gap stays infinite).
        gaps = np.full((len(key_rows), len(query_rows)), np.inf)
        shown = np.flatnonzero(inside[key_rows])
        if len(shown):
            offsets = projected[key_rows[shown]][:, None, :] - found.xy[query_rows][None, :, :]
            gaps[shown] = np.hypot(offsets[..., 0], offsets[..., 1])
        again = gaps.min(axis=1) <= CORRECT_WITHIN_PX
        tally.redetected[index][key_rows[again]] += 1
        # MindAR's matcher: each view point's best keypoint, kept when clearly better than the second.
        distances = _hamming(found.words[query_rows], keys.words[key_rows])
        best = np.argmin(distances, axis=1)
        if len(key_rows) == 1:
            accepted = np.ones(len(query_rows), bool)
        else:
            two = np.partition(distances, 1, axis=1)[:, :2]
            accepted = two[:, 0] < HAMMING_RATIO * two[:, 1]
        matched = best[accepted]
        is_correct = gaps[matched, np.flatnonzero(accepted)] <= CORRECT_WITHIN_PX
        np.add.at(tally.correct[index], key_rows[matched[is_correct]], 1)
        correct_rows.append(key_rows[matched[is_correct]])
        np.add.at(tally.wrong[index], key_rows[matched[~is_correct]], 1)
        correct_total += int(is_correct.sum())
    if correct_rows:
        tally.matched_points[-1][index] = np.concatenate(correct_rows)
    return correct_total


def _subset(keyframe: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The keyframe with only the points flagged in `keep` (maxima first, as they are stored), and
    cluster trees of those."""
    if keep.all() and keyframe["maximaPointsCluster"]:
        return keyframe
    maxima_count = len(keyframe["maximaPoints"])
    maxima = [p for p, k in zip(keyframe["maximaPoints"], keep[:maxima_count], strict=True) if k]
    minima = [p for p, k in zip(keyframe["minimaPoints"], keep[maxima_count:], strict=True) if k]
    return {
        **keyframe,
        "maximaPoints": maxima,
        "minimaPoints": minima,
        "maximaPointsCluster": build_cluster_tree(_descriptor_bytes(maxima)),
        "minimaPointsCluster": build_cluster_tree(_descriptor_bytes(minima)),
    }


def _descriptor_bytes(points: Sequence[dict[str, Any]]) -> np.ndarray:
    words = np.array([p["descriptors"] for p in points], dtype=">u4").reshape(len(points), DESCRIPTOR_WORDS)
    return words.view(np.uint8).reshape(len(points), DESCRIPTOR_BYTES)


# Extra keyframes of the print seen tilted (degrees away from the camera, direction of the tilt's
# axis in the print's plane): MindAR's keyframes are all face-on, and a descriptor changes with the
# foreshortening of a steep view. Each is made at some of the face-on keyframes' scales.
TILTED_VIEWS = ((55.0, 0.0), (55.0, 45.0), (55.0, 90.0), (55.0, 135.0))
# They are made at the face-on keyframes nearest these longer sides (px): a print seen steeply is
# mostly seen small, and tilted keyframes of large scales cost many bytes for few views.
TILTED_SIDES = (256, 128)


def _compression(tilt_degrees: float, axis_degrees: float) -> np.ndarray:
    """The 2 x 2 map of a plane seen tilted by `tilt_degrees` about an axis at `axis_degrees` in it:
    foreshortened by cos(tilt) across the axis (an affine view, as the matcher's own geometry is)."""
    axis = math.radians(axis_degrees)
    turn = np.array([[math.cos(axis), -math.sin(axis)], [math.sin(axis), math.cos(axis)]])
    return turn @ np.diag([1.0, math.cos(math.radians(tilt_degrees))]) @ turn.T


def tilted_keyframe(
    target: np.ndarray, scale: float, tilt_degrees: float, axis_degrees: float
) -> dict[str, Any]:
    """A keyframe of the print reduced to `scale` and seen tilted, its points stored where they lie
    on the face-on keyframe of that scale."""
    face_on: np.ndarray = resize_box(target, scale).astype(np.float32)
    height, width = face_on.shape
    squash = _compression(tilt_degrees, axis_degrees)
    # A foreshortened picture loses detail across the axis: blurred first as a lens would.
    stretch = 1.0 / math.cos(math.radians(tilt_degrees))
    face_on = np.asarray(cv2.GaussianBlur(face_on, (0, 0), 0.6 * math.sqrt(stretch**2 - 1.0)))
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64) @ squash.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    shift = -low
    size = (int(math.ceil(high[0] - low[0])), int(math.ceil(high[1] - low[1])))
    # Pixel indexes: face-on index j has edge coordinate j + 0.5; the tilted one is squashed and shifted.
    forward = np.eye(3)
    forward[:2, :2] = squash
    forward[:2, 2] = squash @ (0.5, 0.5) + shift - 0.5
    tilted = cv2.warpAffine(
        face_on, forward[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    image = np.clip(np.rint(tilted), 0, 255).astype(np.uint8)
    # Its cluster trees are built by `_subset`, once its points are chosen.
    return keyframe_of(
        image, scale, to_keyframe=np.linalg.inv(forward), size=(width, height), with_trees=False
    )


def tilted_keyframes(target: np.ndarray, keyframes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    sides = np.array([max(kf["width"], kf["height"]) for kf in keyframes])
    steps = sorted({int(np.argmin(np.abs(np.log(sides / side)))) for side in TILTED_SIDES})
    scales = [keyframes[i]["scale"] for i in steps]
    return [tilted_keyframe(target, scale, tilt, axis) for scale in scales for tilt, axis in TILTED_VIEWS]


def _point_count(keyframe: dict[str, Any]) -> int:
    return len(keyframe["maximaPoints"]) + len(keyframe["minimaPoints"])


def select_points(target: np.ndarray, keyframes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trained keyframes for `target`: MindAR's face-on ones (from `build_matching_keyframes`) and
    tilted ones, less the keyframes whose removal the simulated views hardly feel, and less the
    points those views showed to be useless (never found again nor matched) or misleading (matched
    wrongly more often than correctly). A target no simulated view finds keeps MindAR's keyframes."""
    candidates = [*keyframes, *tilted_keyframes(target, keyframes)]
    tally = _tally(candidates, list(simulated_views(target, TRAINING_VIEWS, TRAINING_SEED)))
    kept = list(range(len(candidates)))
    if not tally.found(np.array(kept)).any():
        return list(keyframes)
    # Keyframes, face-on or tilted, whose removal the views hardly feel go, the largest first: they
    # cost the most bytes, and a smaller keyframe finds the print too, an octave coarser.
    full_strength = tally.strength(np.array(kept))
    for index in sorted(range(len(candidates)), key=lambda i: -_point_count(candidates[i])):
        rest = np.array([i for i in kept if i != index])
        if tally.strength(rest) >= (1 - KEYFRAME_LOSS_ALLOWED) * full_strength:
            kept.remove(index)
    selected = []
    for index in kept:
        visible, again = tally.visible[index], tally.redetected[index]
        correct, wrong = tally.correct[index], tally.wrong[index]
        useless = (visible >= UNSEEN_AFTER_VIEWS) & (again == 0) & (correct == 0)
        misleading = wrong > correct + WRONG_BEYOND_CORRECT
        keep = ~(useless | misleading)
        if keep.sum() >= MIN_KEPT_POINTS:
            selected.append(_subset(candidates[index], keep))
    return selected or list(keyframes)


# The rating: 0 to 5 in proportion to the share of everyday phone views expected to find the print.
# The simulated views are harsher than everyday ones (every one tilted up to 60 degrees, most blurred
# or dim), so the share they find understates it; the expected share is this line of the simulated
# one, fitted once to MindAR's own detection rates in benchmarks/detection.py's views (8 photos).
TOP_RATING = 5
EVERYDAY_SHARE_AT_NONE = 0.45
EVERYDAY_SHARE_PER_SIMULATED = 0.75
# The target is seen in thirds for naming weak regions; a region is weak when the views showing it
# gather less than this share of the mean region's correct matches there, per view.
WEAK_REGION_SHARE = 0.35
REGION_NAMES = (
    ("top left", "top", "top right"),
    ("left", "centre", "right"),
    ("bottom left", "bottom", "bottom right"),
)


@dataclass(frozen=True)
class Findability:
    """How findable a target is in the simulated views of the rating (a seed training never used):
    the share found, its rating from 0 to 5 (the share of everyday views expected to find it, in
    fifths), and the regions of the print that hold too little to be found by when they fill the view."""

    found_share: float
    rating: int
    weak_regions: tuple[str, ...]


def rate_findability(target: np.ndarray, keyframes: Sequence[dict[str, Any]]) -> Findability:
    """Rate `keyframes` (as they go into the .mind) of `target` on the rating's simulated views."""
    views = list(simulated_views(target, RATING_VIEWS, RATING_SEED))
    tally = _tally(keyframes, views)
    share = float(tally.found(np.arange(len(keyframes))).mean())
    height, width = target.shape
    thirds = np.array(
        [[(col + 0.5) * width / 3, (row + 0.5) * height / 3] for row in range(3) for col in range(3)]
    )
    shown = np.zeros(9, np.int32)
    for view in views:
        on_screen = cv2.perspectiveTransform(thirds[None], view.homography)[0]
        shown += np.all((on_screen >= 0) & (on_screen < VIEW_SIDE), axis=1)
    # Each view's matches in its best keyframe, by the third of the print the keypoint lies in.
    regions = []
    for points in tally.points:
        xy = points.xy
        rows = np.clip(xy[:, 1] * 3 // height, 0, 2).astype(int)
        regions.append(rows * 3 + np.clip(xy[:, 0] * 3 // width, 0, 2).astype(int))
    matched = np.zeros(9, np.float64)
    for matches, correct_rows in zip(tally.matches, tally.matched_points, strict=True):
        best = int(np.argmax(matches))
        if best in correct_rows:
            np.add.at(matched, regions[best][correct_rows[best]], 1)
    per_view = matched / np.maximum(shown, 1)
    # Against the mean of the regions: a print with detail in one corner only has every other
    # region weak; a print matched nowhere is weak everywhere.
    typical = float(per_view[shown > 0].mean()) if shown.any() else 0.0
    weak = tuple(
        REGION_NAMES[i // 3][i % 3]
        for i in range(9)
        if shown[i] and (typical == 0 or per_view[i] < WEAK_REGION_SHARE * typical)
    )
    everyday = min(1.0, EVERYDAY_SHARE_AT_NONE + EVERYDAY_SHARE_PER_SIMULATED * share)
    return Findability(found_share=share, rating=int(round(TOP_RATING * everyday)), weak_regions=weak)
