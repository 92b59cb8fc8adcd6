"""Compiling images into one ``.mind`` file, with a quality report per target a customer can act on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from arv.mindar.errors import NotAnImageError, TargetUntrackableError
from arv.mindar.images import (
    MIN_SHORTEST_SIDE,
    ImageSource,
    load_target_image,
    source_label,
)
from arv.mindar.limits import DEFAULT_MAX_PIXELS
from arv.mindar.matching import build_matching_keyframes
from arv.mindar.mindfile import encode_mind
from arv.mindar.tracking import TrackingLevel, build_tracking_levels
from arv.mindar.training import Findability, rate_findability, select_points

# Photos are compiled at most this many pixels on their shortest side (see the README for the
# measurement behind it): a phone camera sees a print at well under this size, and larger keyframes
# only cost time and memory.
DEFAULT_WORKING_SIDE = 1024
# A working image holds at most this many squares of the working side: a long panorama is reduced
# further, so its matching pyramid costs no more than a 4:1 picture's.
WORKING_AREA_IN_SQUARES = 4

# MindAR's tracker needs 4 template points to estimate a pose (it follows the 128-px level).
MIN_TRACKING_POINTS = 4
# Below this many feature points in a keyframe, the matcher rarely gathers the 6 inliers it needs.
MIN_KEYFRAME_FEATURES = 8
# A target whose keyframes mostly fall below MIN_KEYFRAME_FEATURES is never found.
MIN_USABLE_KEYFRAME_SHARE = 0.5
# Fewer tracking points than this on the 128-px level make tracking jittery and easily lost.
STEADY_TRACKING_POINTS = 8
# Fewer feature points than this in the full-size keyframe make detection unreliable.
GOOD_KEYFRAME_FEATURES = 40
# A half of the target holding less than this share of the feature points is named as weak.
WEAK_HALF_SHARE = 0.2

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class KeyframeReport:
    """Feature points found in one keyframe of the matching pyramid."""

    width: int
    height: int
    scale: float
    maxima_points: int
    minima_points: int

    @property
    def feature_points(self) -> int:
        return self.maxima_points + self.minima_points


@dataclass(frozen=True)
class TrackingLevelReport:
    """Template points found in one tracking level."""

    width: int
    height: int
    scale: float
    points: int


@dataclass(frozen=True)
class TargetReport:
    """The quality of one compiled target.

    Parameters:
        source: the input's name (file name, or ``image N``).
        width, height: the target's size as compiled (the working resolution), in pixels.
        image_width, image_height: the image's full size as shown (orientation applied).
        keyframes: feature points per keyframe of the .mind: the face-on ones kept, then the tilted
            ones (MindAR's own face-on pyramid alone when exact).
        tracking_levels: tracking points per level (256 and 128 px).
        verdict: ``good``, ``weak: <what is weak>`` or ``unusable``.
        problems: sentences saying what keeps the verdict from ``good``; empty when good.
        findability: 0 to 5, the share of everyday phone views expected to find the target, in
            fifths, estimated from ``found_share`` (see arv.mindar.training's rating).
        found_share: the share of simulated phone views (tilted, far, blurred, dim) in which the
            target is found, 0 to 1.
        weak_regions: the thirds of the print (``top left`` ... ``bottom right``) that hold too
            little to be found by when they fill the camera's view.
        trained: whether the keyframes were trained (False: MindAR's own, bit-exact).
    """

    source: str
    width: int
    height: int
    image_width: int
    image_height: int
    keyframes: tuple[KeyframeReport, ...]
    tracking_levels: tuple[TrackingLevelReport, ...]
    verdict: str
    problems: tuple[str, ...]
    findability: int
    found_share: float
    weak_regions: tuple[str, ...]
    trained: bool

    @property
    def usable(self) -> bool:
        return self.verdict != "unusable"

    def to_dict(self) -> dict:
        """The report as JSON-serialisable data."""
        data = asdict(self)
        data["keyframes"] = [
            {**asdict(keyframe), "feature_points": keyframe.feature_points} for keyframe in self.keyframes
        ]
        data["tracking_levels"] = [asdict(level) for level in self.tracking_levels]
        data["problems"] = list(self.problems)
        data["weak_regions"] = list(self.weak_regions)
        return data


@dataclass(frozen=True)
class CompiledTargets:
    """The ``.mind`` file's bytes and one quality report per target, in input order."""

    data: bytes
    reports: tuple[TargetReport, ...]

    def to_dict(self) -> dict:
        return {"targets": [report.to_dict() for report in self.reports], "mind_bytes": len(self.data)}


def working_resolution(grey: np.ndarray, working_side: int) -> np.ndarray:
    """The grey image reduced (area averaging) to the size it is compiled at.

    The shortest side becomes at most ``working_side`` px, and the area at most
    ``WORKING_AREA_IN_SQUARES`` squares of that side (a long panorama is reduced further), but the
    shortest side never drops below MIN_SHORTEST_SIDE.
    """
    height, width = grey.shape
    shortest = min(width, height)
    factor = min(
        1.0, working_side / shortest, (WORKING_AREA_IN_SQUARES * working_side**2 / (width * height)) ** 0.5
    )
    factor = max(factor, min(1.0, MIN_SHORTEST_SIDE / shortest))
    if factor >= 1.0:
        return grey
    size = (max(round(width * factor), 1), max(round(height * factor), 1))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def _target_coordinates(keyframes: Sequence[dict]) -> np.ndarray:
    """All feature points of all keyframes, as (x, y) fractions of the target's width and height."""
    fractions = []
    for keyframe in keyframes:
        for point in (*keyframe["maximaPoints"], *keyframe["minimaPoints"]):
            fractions.append(
                ((point["x"] + 0.5) / keyframe["width"], (point["y"] + 0.5) / keyframe["height"])
            )
    return np.array(fractions, dtype=np.float64).reshape(-1, 2)


def _weak_halves(fractions: np.ndarray) -> list[str]:
    """The halves of the target (upper, lower, left, right) holding few of its feature points."""
    if len(fractions) == 0:
        return []
    x, y = fractions[:, 0], fractions[:, 1]
    shares = {
        "upper": float(np.mean(y < 0.5)),
        "lower": float(np.mean(y >= 0.5)),
        "left": float(np.mean(x < 0.5)),
        "right": float(np.mean(x >= 0.5)),
    }
    return [half for half, share in shares.items() if share < WEAK_HALF_SHARE]


def assess_quality(
    keyframes: Sequence[dict], tracking_levels: Sequence[TrackingLevel]
) -> tuple[str, tuple[str, ...]]:
    """The verdict (``good``, ``weak: ...``, ``unusable``) and the problems behind it.

    Unusable: MindAR could never find the target (most keyframes lack the features its matcher
    needs) or never follow it (fewer than 4 points on the tracked level). Weak: it will be found,
    but not from everywhere or not steadily; the verdict names what is weak.
    """
    counts = [len(kf["maximaPoints"]) + len(kf["minimaPoints"]) for kf in keyframes]
    tracked_points = len(tracking_levels[-1].points)
    findable = sum(count >= MIN_KEYFRAME_FEATURES for count in counts)
    unusable = []
    if not counts or findable < MIN_USABLE_KEYFRAME_SHARE * len(counts):
        unusable.append(
            f"too uniform to be found ({sum(counts)} feature points in {len(counts)} keyframes; "
            f"MindAR's matcher needs at least {MIN_KEYFRAME_FEATURES} in most of them)"
        )
    if tracked_points < MIN_TRACKING_POINTS:
        unusable.append(
            f"too few distinct points to be followed ({tracked_points} on the "
            f"{min(tracking_levels[-1].grey.shape)}-px level; "
            f"MindAR's tracker needs at least {MIN_TRACKING_POINTS})"
        )
    if unusable:
        return "unusable", tuple(unusable)

    weaknesses = []
    problems = []
    halves = _weak_halves(_target_coordinates(keyframes))
    if halves:
        names = " and ".join(halves)
        weaknesses.append(
            f"few details in the {names} half" if len(halves) == 1 else f"few details in the {names} halves"
        )
        problems.append(
            f"the {names} {'half holds' if len(halves) == 1 else 'halves hold'} less than "
            f"{WEAK_HALF_SHARE:.0%} of the feature points; "
            "the print is hard to find when that part fills the view"
        )
    if counts[0] < GOOD_KEYFRAME_FEATURES:
        weaknesses.append("few details overall")
        problems.append(
            f"{counts[0]} feature points at full size "
            f"(a reliable target has {GOOD_KEYFRAME_FEATURES} or more)"
        )
    if tracked_points < STEADY_TRACKING_POINTS:
        weaknesses.append("few points to follow")
        problems.append(
            f"{tracked_points} tracking points (steady tracking needs {STEADY_TRACKING_POINTS} or more)"
        )
    if weaknesses:
        return "weak: " + "; ".join(weaknesses), tuple(problems)
    return "good", ()


def _report(
    label: str,
    image_shape: tuple[int, ...],
    target: np.ndarray,
    keyframes: Sequence[dict],
    tracking_levels: Sequence[TrackingLevel],
    quality: tuple[str, tuple[str, ...]],
    findability: Findability,
    trained: bool,
) -> TargetReport:
    verdict, problems = quality
    return TargetReport(
        source=label,
        width=int(target.shape[1]),
        height=int(target.shape[0]),
        image_width=int(image_shape[1]),
        image_height=int(image_shape[0]),
        keyframes=tuple(
            KeyframeReport(
                width=int(kf["width"]),
                height=int(kf["height"]),
                scale=float(kf["scale"]),
                maxima_points=len(kf["maximaPoints"]),
                minima_points=len(kf["minimaPoints"]),
            )
            for kf in keyframes
        ),
        tracking_levels=tuple(
            TrackingLevelReport(
                width=level.width, height=level.height, scale=level.scale, points=len(level.points)
            )
            for level in tracking_levels
        ),
        verdict=verdict,
        problems=problems,
        findability=findability.rating,
        found_share=round(findability.found_share, 3),
        weak_regions=findability.weak_regions,
        trained=trained,
    )


def compile_targets(
    images: Sequence[ImageSource] | ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    working_side: int = DEFAULT_WORKING_SIDE,
    progress: ProgressCallback | None = None,
    labels: Sequence[str] | None = None,
    exact: bool = False,
) -> CompiledTargets:
    """Compile images into one MindAR ``.mind`` file (one target per image, in order) with reports.

    The same inputs always give the same bytes.

    Parameters:
        images: paths, encoded image bytes or arrays (see ``load_grey_image``); a single one is allowed.
        max_pixels: refuse an image whose header claims more pixels than this (checked before decoding).
        working_side: photos are reduced so their shortest side is at most this many pixels first.
        progress: called as ``progress(fraction_done, what_is_being_done)`` while compiling.
        labels: names for the images in messages and reports (default: file names, ``image N``).
        exact: keep MindAR's own keyframes, bit-exact with its compiler, instead of training them
            on simulated phone views (arv.mindar.training): for comparison with MindAR.

    Raises:
        MindARInputError: an image was refused (its subclass says why); ``TargetUntrackableError``
            for an image MindAR could never find or follow, with its report attached.
    """
    if isinstance(images, (str, bytes, bytearray, memoryview, np.ndarray)) or hasattr(images, "__fspath__"):
        images = [images]  # type: ignore[list-item]
    images = list(images)  # type: ignore[arg-type]
    if not images:
        raise NotAnImageError("no images to compile")
    if working_side < MIN_SHORTEST_SIDE:
        raise ValueError(f"working_side must be at least {MIN_SHORTEST_SIDE} px, not {working_side}")
    names = list(labels) if labels is not None else [source_label(image, i) for i, image in enumerate(images)]

    def report_progress(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    targets = []
    reports = []
    steps_per_image = 4
    total_steps = steps_per_image * len(images)
    for index, (image, label) in enumerate(zip(images, names, strict=True)):
        step = index * steps_per_image
        report_progress(step / total_steps, f"loading {label}")
        loaded = load_target_image(image, max_pixels=max_pixels, working_side=working_side, label=label)
        image_shape = (loaded.height, loaded.width)
        target = working_resolution(loaded.grey, working_side)
        del loaded  # the full-size grey is not needed past the working resolution
        report_progress((step + 1) / total_steps, f"finding feature points in {label}")
        keyframes = build_matching_keyframes(target)
        report_progress((step + 2) / total_steps, f"finding tracking points in {label}")
        tracking_levels = build_tracking_levels(target)
        # The verdict reads MindAR's own keyframes: it is about the photo, the rating about the target.
        quality = assess_quality(keyframes, tracking_levels)
        if quality[0] == "unusable":
            # Nothing to train or rate: the report says why it is refused.
            findability, matching = Findability(0.0, 0, ()), keyframes
        else:
            report_progress(
                (step + 3) / total_steps,
                f"rating {label} in simulated phone views"
                if exact
                else f"training {label} on simulated phone views",
            )
            matching = keyframes if exact else select_points(target, keyframes)
            findability = rate_findability(target, matching)
        report = _report(
            label, image_shape, target, matching, tracking_levels, quality, findability, not exact
        )
        if not report.usable:
            raise TargetUntrackableError(
                "the image is unusable as a target: " + "; ".join(report.problems),
                source=label,
                report=report,
            )
        reports.append(report)
        targets.append(
            {
                "targetImage": {"width": report.width, "height": report.height},
                "trackingData": [level.to_mind() for level in tracking_levels],
                "matchingData": matching,
            }
        )
    report_progress(1.0, "writing the .mind file")
    data = encode_mind(targets, compact=not exact)
    return CompiledTargets(data=data, reports=tuple(reports))
