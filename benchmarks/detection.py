"""How often MindAR finds ARV's trained targets against MindAR's own, how big and how fast they are to make,
and whether the findability rating foretells it (issue 14, acceptance items 1, 2, 3, 5 and 6).

Run from the repository root:

    .venv/bin/python benchmarks/detection.py [--photos NAME ...]

Each photo is compiled three ways: by ARV as the product does (trained feature selection), by ARV with
``exact=True`` (bit-exact with MindAR's compiler), and by MindAR 1.2.5's own compiler in Node.js. The
three .mind files of every photo are then searched by MindAR's own detector and matcher in Node.js
(tests/support/mindar_client.py) in the same camera views, made here with fixed seeds and never shown to
the compiler: face-on to 60 degrees of tilt, prints down to 15% of the frame's width, focus and motion
blur, noise, dim and harsh light, clutter, prints larger than the frame or half off its edge, and views
without the target (empty desks, other pictures, and each photo's views searched for the next photo's
target). A target counts as located when all four corners lie within 10% of its diagonal of the truth;
a detection in a view without that target is a false positive, and one in the wrong place misplaced.

Printed side by side: views located per photo and compiler, false positives, .mind bytes, compile
times (in this process and as whole processes, both compilers, on a 1536 x 1536 photo made as
benchmarks/compiler.py makes it), and each trained target's findability rating next to the share of
its views MindAR located it in. Goals are printed as met or NOT met; nothing is asserted.

MindAR compiles two photos at a time (two cores), so its per-photo in-Node times are slower than alone;
the speed comparison on the large photo runs each compile alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on the import path by itself.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.camera_views import (  # noqa: E402
    Camera,
    CameraView,
    Pose,
    desk_background,
    expose,
    located_in,
    views_in_poses,
    views_without_target,
)
from tests.support.mindar_client import (  # noqa: E402
    Detection,
    MindarCompile,
    SearchRun,
    compile_with_mindar,
    locate_runs,
    picture_as_seen,
)

from benchmarks.compiler import FIXTURES, PHOTOS, SAMPLE_PHOTOS, node_version, prepare_photo, verdict  # noqa: E402

ARV = REPO / ".venv" / "bin" / "arv"

# The photos: the two MindAR fixtures, six of scikit-image's, and two that are poorly findable on
# purpose (a silhouette, and a plain card with a few small details) so that the rating spans a range.
TARGETS: dict[str, str] = {
    "pictarize": "fixture:pictarize.jpg",
    "card": "fixture:card.png",
    "astronaut": "skimage:astronaut.png",
    "chelsea": "skimage:chelsea.png",
    "coffee": "skimage:coffee.png",
    "rocket": "skimage:rocket.jpg",
    "motorcycle": "skimage:motorcycle_left.png",
    "camera": "skimage:camera.png",
    "horse": "skimage:horse.png",
    "plain-card": "made:plain-card",
}
# Prints that are no target, lying on the desk in the views without one.
OTHER_PICTURES = ("hubble_deep_field.jpg", "retina.jpg")

# The views of every target, from easy to hard. Sizes are the print's longer side in frame pixels
# (the frame is 640 x 480); the last number is the desk's clutter (0..1).
VIEWS: tuple[tuple[str, Pose, Camera, float], ...] = (
    ("face-on", Pose(size=300), Camera(), 0.3),
    ("face-on-near", Pose(size=420, roll=5), Camera(), 0.3),
    ("upside-down", Pose(size=300, roll=170, tilt_x=10), Camera(), 0.3),
    ("rotated-90", Pose(size=280, roll=90), Camera(), 0.3),
    ("tilt-30", Pose(size=320, tilt_x=30, roll=-10), Camera(), 0.3),
    ("tilt-40-sideways", Pose(size=300, tilt_y=40, roll=15), Camera(), 0.3),
    ("tilt-55-blurred", Pose(size=320, tilt_x=-55, roll=-40), Camera(blur=1.5), 0.3),
    ("tilt-50", Pose(size=340, tilt_x=50, roll=25), Camera(), 0.3),
    ("tilt-55-sideways", Pose(size=340, tilt_y=-55), Camera(), 0.3),
    ("tilt-60", Pose(size=360, tilt_x=60), Camera(), 0.3),
    ("tilt-60-sideways", Pose(size=360, tilt_y=60, roll=-20), Camera(), 0.3),
    ("small-125-dim", Pose(size=125, roll=-25), Camera(noise=8.0, gain=0.45, gamma=1.2), 0.5),
    ("small-160-tilted", Pose(size=160, tilt_x=30), Camera(), 0.5),
    ("small-125", Pose(size=125, centre=(20, -15), roll=40), Camera(), 0.5),
    ("small-96", Pose(size=96), Camera(), 0.5),
    ("small-110-defocused", Pose(size=110, roll=15), Camera(blur=1.0), 0.5),
    ("heavy-blur", Pose(size=320, roll=-5), Camera(blur=3.2), 0.3),
    ("motion-blur", Pose(size=300, roll=10), Camera(motion=9, motion_angle=20), 0.3),
    ("noisy", Pose(size=300, roll=-30), Camera(noise=14.0), 0.3),
    ("dim", Pose(size=300, tilt_x=20), Camera(noise=9.0, gain=0.35, gamma=1.3), 0.3),
    ("dark-room", Pose(size=300, roll=60), Camera(noise=12.0, gain=0.2, gamma=1.4), 0.3),
    ("harsh-shadow", Pose(size=300, tilt_y=-25), Camera(gain=1.4, gamma=0.75, shadow=0.75), 0.3),
    ("cluttered-off-centre", Pose(size=220, centre=(120, 60), tilt_y=25), Camera(), 1.0),
    ("larger-than-frame", Pose(size=760, centre=(40, 30), roll=10), Camera(), 0.3),
    ("half-off-the-edge", Pose(size=320, centre=(250, -20), roll=-10), Camera(), 0.5),
    ("off-the-corner", Pose(size=360, centre=(-230, -170), tilt_x=20), Camera(), 0.5),
    (
        "far-tilted-dim-blurred",
        Pose(size=180, tilt_x=40, roll=30),
        Camera(blur=1.2, noise=8.0, gain=0.5),
        0.5,
    ),
    ("near-steep-shaken", Pose(size=380, tilt_y=45), Camera(motion=6, motion_angle=-60, noise=5.0), 0.3),
)
# Desks with nothing on them that is a target: (name, camera, clutter).
EMPTY_DESKS: tuple[tuple[str, Camera, float], ...] = (
    ("dim-desk", Camera(noise=10.0, gain=0.45, gamma=1.2), 0.6),
)
# Seeds of the views without a target, apart from the target views' (seed = the photo's index).
EMPTY_SEED = 1000

# A rating agrees with the measured rate when it is within one step of five times the rate.
RATING_TOLERANCE = 1.0
# Whole-process compiles of the large photo per ARV mode (median); MindAR's takes 20-100 s and runs once.
ARV_PROCESS_RUNS = 3
ARV_IN_PROCESS_RUNS = 3
LOCATE_TIMEOUT = 3600.0

COMPILERS = ("MindAR", "ARV exact", "ARV trained")


@dataclass(frozen=True)
class Compiled:
    """One photo's three .mind files, their compile times (seconds; MindAR's inside Node.js) and the
    trained target's rating."""

    minds: dict[str, bytes]
    seconds: dict[str, float]
    findability: int
    found_share: float


@dataclass(frozen=True)
class Tally:
    """One compiler's .mind of one photo in the views: the names of the views it was located in and of
    those it was misplaced in, and how many detections it made in views without its target."""

    located_views: tuple[str, ...] = ()
    misplaced_views: tuple[str, ...] = ()
    false_positives: int = 0

    @property
    def located(self) -> int:
        return len(self.located_views)

    @property
    def misplaced(self) -> int:
        return len(self.misplaced_views)


def plain_card() -> np.ndarray:
    """A mostly flat print: a pale card with a thin border, one line of small type and a small photo in
    a corner, the kind of print whose few details MindAR loses when it is small, tilted or dim."""
    card = np.full((420, 600, 3), (236, 230, 218), np.uint8)
    cv2.rectangle(card, (14, 14), (585, 405), (170, 160, 150), 2, cv2.LINE_AA)
    cv2.putText(
        card, "Studio Arv  2026", (40, 70), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (60, 60, 70), 1, cv2.LINE_AA
    )
    detail = picture_as_seen(SAMPLE_PHOTOS / "chelsea.png")
    card[290:380, 450:560] = cv2.resize(detail, (110, 90), interpolation=cv2.INTER_AREA)
    return card


def photo_path(source: str, folder: Path) -> Path:
    """The image file of a photo source, made in `folder` when the benchmark draws it."""
    kind, name = source.split(":", 1)
    if kind == "fixture":
        return FIXTURES / name
    if kind == "skimage":
        return SAMPLE_PHOTOS / name
    path = folder / f"{name}.png"
    Image.fromarray(plain_card()).save(path)
    return path


def views_without_targets() -> list[CameraView]:
    """Extra empty desks, then tests/support/camera_views.py's views without a target: its empty desk
    and the other pictures lying on one."""
    views = []
    for index, (name, camera, clutter) in enumerate(EMPTY_DESKS):
        rng = np.random.default_rng([EMPTY_SEED, index])
        views.append(CameraView(name, expose(desk_background(rng, clutter), camera, rng), None))
    others = [picture_as_seen(SAMPLE_PHOTOS / name) for name in OTHER_PICTURES]
    return views + views_without_target(others, seed=EMPTY_SEED)


def timed(function: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def compile_all(paths: dict[str, Path]) -> dict[str, Compiled]:
    """ARV's two compiles of each photo here, one after another; then MindAR's, two at a time."""
    from arv.mindar import compile_targets

    arv = {}
    for name, path in paths.items():
        trained, trained_seconds = timed(lambda p=path: compile_targets([p]))
        exact, exact_seconds = timed(lambda p=path: compile_targets([p], exact=True))
        arv[name] = (trained, trained_seconds, exact, exact_seconds)
    with ThreadPoolExecutor(max_workers=2) as pool:
        mindar: dict[str, MindarCompile] = dict(
            zip(
                paths, pool.map(lambda p: compile_with_mindar([p], timeout=1800), paths.values()), strict=True
            )
        )
    compiled = {}
    for name, (trained, trained_seconds, exact, exact_seconds) in arv.items():
        report = trained.reports[0]  # type: ignore[attr-defined]
        compiled[name] = Compiled(
            minds={
                "MindAR": mindar[name].data,
                "ARV exact": exact.data,  # type: ignore[attr-defined]
                "ARV trained": trained.data,  # type: ignore[attr-defined]
            },
            seconds={
                "MindAR": mindar[name].seconds,
                "ARV exact": exact_seconds,
                "ARV trained": trained_seconds,
            },
            findability=report.findability,
            found_share=report.found_share,
        )
    return compiled


def search_all(
    compiled: dict[str, Compiled], target_views: dict[str, list[CameraView]], empty: list[CameraView]
) -> dict[str, dict[str, Tally]]:
    """Every .mind in its photo's views and the empty ones (all nine crop positions), and in the next
    photo's views (centre crop: every view's own search has detected it already), in one Node.js job
    so that each frame's feature points are detected once for all three compilers."""
    names = list(compiled)
    runs, slots = [], []
    for compiler in COMPILERS:
        for i, name in enumerate(names):
            mind = compiled[name].minds[compiler]
            other = names[(i + 1) % len(names)]
            runs.append(SearchRun(mind, [v.frame for v in target_views[name] + empty]))
            runs.append(SearchRun(mind, [v.frame for v in target_views[other]], crop_positions=1))
            slots.append((compiler, name))
    results = locate_runs(runs, timeout=LOCATE_TIMEOUT)
    tallies: dict[str, dict[str, Tally]] = {c: {} for c in COMPILERS}
    for (compiler, name), own, cross in zip(slots, results[0::2], results[1::2], strict=True):
        tallies[compiler][name] = tally(target_views[name], own, cross)
    return tallies


def tally(
    views: list[CameraView], own: Sequence[Detection | None], cross: Sequence[Detection | None]
) -> Tally:
    """own: the .mind in its views, then in the empty views; cross: in another photo's views."""
    found_in = [(view, found) for view, found in zip(views, own, strict=False) if found is not None]
    return Tally(
        located_views=tuple(view.name for view, found in found_in if located_in(view, found.corners)),
        misplaced_views=tuple(view.name for view, found in found_in if not located_in(view, found.corners)),
        false_positives=sum(found is not None for found in [*own[len(views) :], *cross]),
    )


def print_detection(tallies: dict[str, dict[str, Tally]], target_views: dict[str, list[CameraView]]) -> None:
    print("\n1. views located by MindAR 1.2.5's detector and matcher (misplaced, false positives)")
    print(f"{'photo':12} {'views':>5}" + "".join(f" {c:>19}" for c in COMPILERS))
    for name, views in target_views.items():
        cells = [tallies[c][name] for c in COMPILERS]
        print(
            f"{name:12} {len(views):5}"
            + "".join(f" {t.located:5} ({t.misplaced:2}, {t.false_positives:2} fp)   " for t in cells)
        )
    totals = {c: total(tallies[c]) for c in COMPILERS}
    views = sum(len(v) for v in target_views.values())
    print(
        f"{'total':12} {views:5}"
        + "".join(f" {t.located:5} ({t.misplaced:2}, {t.false_positives:2} fp)   " for t in totals.values())
    )
    mindar, trained = totals["MindAR"], totals["ARV trained"]
    ratio = trained.located / mindar.located if mindar.located else float("inf")
    print(
        f"goal: ARV trained located in >= 1.10x MindAR's views: {trained.located} / {mindar.located}"
        f" = {ratio:.2f}x -> {verdict(ratio >= 1.10)}"
    )
    wrong_trained = trained.false_positives + trained.misplaced
    wrong_mindar = mindar.false_positives + mindar.misplaced
    print(
        f"goal: no more false positives (incl. misplaced) than MindAR's: {wrong_trained} vs {wrong_mindar}"
        f" -> {verdict(wrong_trained <= wrong_mindar)}"
    )


def total(per_photo: dict[str, Tally]) -> Tally:
    return Tally(
        tuple(v for t in per_photo.values() for v in t.located_views),
        tuple(v for t in per_photo.values() for v in t.misplaced_views),
        sum(t.false_positives for t in per_photo.values()),
    )


def print_views(tallies: dict[str, dict[str, Tally]]) -> None:
    """Which kinds of view each compiler's targets are located in, over all photos."""
    totals = {c: total(tallies[c]) for c in COMPILERS}
    photos = len(tallies[COMPILERS[0]])
    print(f"\n1b. photos located in each view (of {photos})")
    print(f"{'view':24}" + "".join(f" {c:>11}" for c in COMPILERS))
    for name, *_ in VIEWS:
        print(f"{name:24}" + "".join(f" {totals[c].located_views.count(name):11}" for c in COMPILERS))


def print_bytes_and_times(compiled: dict[str, Compiled]) -> None:
    print(
        "\n2. .mind bytes, and compile time of each photo (ARV in this process; MindAR inside Node.js,"
        " two at a time)"
    )
    print(
        f"{'photo':12} {'MindAR':>10} {'ARV exact':>10} {'ARV trained':>12} {'trained/MindAR':>15}"
        f" {'MindAR s':>9} {'exact s':>8} {'trained s':>10}"
    )
    for name, c in compiled.items():
        sizes = [len(c.minds[k]) for k in COMPILERS]
        print(
            f"{name:12} {sizes[0]:10,} {sizes[1]:10,} {sizes[2]:12,} {sizes[2] / sizes[0]:15.2f}"
            + "".join(f" {c.seconds[k]:{w}.2f}" for k, w in zip(COMPILERS, (9, 8, 10), strict=True))
        )
    mindar_bytes = sum(len(c.minds["MindAR"]) for c in compiled.values())
    trained_bytes = sum(len(c.minds["ARV trained"]) for c in compiled.values())
    largest = max(len(c.minds["ARV trained"]) / len(c.minds["MindAR"]) for c in compiled.values())
    print(
        f"{'total':12} {mindar_bytes:10,} {sum(len(c.minds['ARV exact']) for c in compiled.values()):10,}"
        f" {trained_bytes:12,} {trained_bytes / mindar_bytes:15.2f}"
    )
    print(
        f"goal: ARV trained .mind at most 0.60 of MindAR's bytes on every photo: largest share {largest:.2f},"
        f" all photos {trained_bytes / mindar_bytes:.2f} -> {verdict(largest <= 0.60)}"
    )


@dataclass(frozen=True)
class Speed:
    """Compile times of the large photo, seconds by compiler: whole process, and inside the process."""

    label: str
    whole: dict[str, float]
    inside: dict[str, float]


def compile_speed(folder: Path) -> Speed:
    """The large photo of benchmarks/compiler.py compiled alone by each compiler, in process and as a
    whole process: ARV's `arv compile` command against a Node.js process running MindAR's compiler."""
    from arv.mindar import compile_targets

    photo = PHOTOS[1]
    image = prepare_photo(photo, folder, seed=1)
    out = folder / "speed.mind"
    whole: dict[str, float] = {}
    inside: dict[str, float] = {}
    for label, flags, kwargs in (("ARV trained", [], {}), ("ARV exact", ["--exact"], {"exact": True})):
        command = [str(ARV), "compile", str(image), "-o", str(out), *flags]
        whole[label] = statistics.median(
            timed(lambda c=command: subprocess.run(c, check=True, capture_output=True))[1]
            for _ in range(ARV_PROCESS_RUNS)
        )
        compile_targets([image], **kwargs)  # the first compile in a process also loads what it needs
        inside[label] = statistics.median(
            timed(lambda k=kwargs: compile_targets([image], **k))[1] for _ in range(ARV_IN_PROCESS_RUNS)
        )
    mindar = compile_with_mindar([image], timeout=1800)
    whole["MindAR"], inside["MindAR"] = mindar.process_seconds, mindar.seconds
    return Speed(photo.label, whole, inside)


def print_speed(speed: Speed) -> None:
    print(
        f"\n3. compile speed, {speed.label} JPEG, each compile alone (MindAR 1.2.5 on Node.js"
        f" {node_version()}, tfjs CPU; ARV median of {ARV_PROCESS_RUNS})"
    )
    print(
        f"{'compiler':12} {'whole process':>14} {'in process':>11}"
        f" {'MindAR / it, whole':>19} {'in process':>11}"
    )
    whole, inside = speed.whole, speed.inside
    for label in COMPILERS:
        print(
            f"{label:12} {whole[label]:13.2f}s {inside[label]:10.2f}s"
            f" {whole['MindAR'] / whole[label]:18.1f}x {inside['MindAR'] / inside[label]:10.1f}x"
        )
    speed_up = whole["MindAR"] / whole["ARV trained"]
    print(
        f"goal: ARV (trained) at least 10x faster than MindAR as a whole process: {speed_up:.1f}x"
        f" -> {verdict(speed_up >= 10)}"
    )


def print_ratings(
    compiled: dict[str, Compiled], tallies: dict[str, Tally], target_views: dict[str, list[CameraView]]
) -> None:
    print("\n5. findability rating of each trained target against MindAR's measured detection rate")
    print(f"{'photo':12} {'findability':>11} {'found_share':>11} {'rate':>6} {'5 x rate':>9} {'agrees':>7}")
    agreeing = 0
    for name, c in compiled.items():
        rate = tallies[name].located / len(target_views[name])
        agrees = abs(c.findability - 5 * rate) <= RATING_TOLERANCE
        agreeing += agrees
        print(
            f"{name:12} {c.findability:11} {c.found_share:11.2f} {rate:6.2f} {5 * rate:9.1f}"
            f" {'yes' if agrees else 'no':>7}"
        )
    print(
        f"goal: the rating within 1 of 5 x the measured rate: {agreeing} of {len(compiled)} photos"
        f" -> {verdict(agreeing == len(compiled))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--photos", nargs="+", choices=list(TARGETS), default=list(TARGETS), help="photos to run"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="arv-detection-benchmark-") as scratch:
        folder = Path(scratch)
        paths = {name: photo_path(TARGETS[name], folder) for name in args.photos}
        target_views = {
            # A photo's views are the same whichever photos run with it: the seed is its place in TARGETS.
            name: views_in_poses(picture_as_seen(path), VIEWS, seed=list(TARGETS).index(name))
            for name, path in paths.items()
        }
        empty = views_without_targets()
        print(
            f"{len(paths)} photos, {len(VIEWS)} views each, {len(empty)} views without a target"
            f" (plus each photo's views searched for the next photo's target)"
        )
        compiled = compile_all(paths)
        speed = compile_speed(folder)
        tallies = search_all(compiled, target_views, empty)
    print_detection(tallies, target_views)
    print_views(tallies)
    print_bytes_and_times(compiled)
    print_speed(speed)
    print_ratings(compiled, tallies["ARV trained"], target_views)
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
