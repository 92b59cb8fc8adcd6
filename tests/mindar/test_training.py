"""Trained feature selection: what the default compile keeps, where tilted keyframes put their points,
and the findability rating. That MindAR's own matcher finds trained targets is tests/mindar/
test_real_client_agrees.py; how much more often than MindAR's own is benchmarks/detection.py."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from arv.mindar import compile_targets
from arv.mindar.images import load_target_image
from arv.mindar.matching import build_matching_keyframes
from arv.mindar.mindfile import decode_mind
from arv.mindar.training import MIN_KEPT_POINTS, rate_findability, tilted_keyframe
from tests.support.fixtures import MINDAR_FIXTURES
from tests.support.images import photo

PICTARIZE = MINDAR_FIXTURES / "pictarize.jpg"


@pytest.fixture(scope="module")
def pictarize_grey() -> np.ndarray:
    return load_target_image(PICTARIZE, max_pixels=10**8, working_side=1024, label="pictarize").grey


def _points(keyframe: dict) -> list[dict]:
    return [*keyframe["maximaPoints"], *keyframe["minimaPoints"]]


def test_a_trained_target_is_smaller_and_every_point_lies_on_the_print() -> None:
    trained = compile_targets([PICTARIZE])
    exact = compile_targets([PICTARIZE], exact=True)

    # Issue 14's goal for the .mind's bytes, against MindAR's own (which the exact compile writes).
    assert len(trained.data) <= 0.6 * len(exact.data), (len(trained.data), len(exact.data))
    (target,) = decode_mind(trained.data)
    for keyframe in target["matchingData"]:
        points = _points(keyframe)
        assert len(points) >= MIN_KEPT_POINTS
        assert all(
            0 <= p["x"] <= keyframe["width"] - 1 and 0 <= p["y"] <= keyframe["height"] - 1 for p in points
        )
        # The cluster trees index the kept points only.
        assert keyframe["maximaPointsCluster"]["rootNode"] and keyframe["minimaPointsCluster"]["rootNode"]
    assert trained.reports[0].trained and not exact.reports[0].trained


def _offsets_to_nearest(ours: dict, theirs: dict) -> np.ndarray:
    """For each point of `ours`, the offset to the nearest point of `theirs`, in keyframe pixels."""
    mine = np.array([(p["x"], p["y"]) for p in _points(ours)])
    other = np.array([(p["x"], p["y"]) for p in _points(theirs)])
    offsets = mine[:, None, :] - other[None, :, :]
    nearest = np.argmin(np.linalg.norm(offsets, axis=2), axis=1)
    return offsets[np.arange(len(mine)), nearest]


def test_a_tilted_keyframe_stores_its_points_where_they_lie_on_the_face_on_print(
    pictarize_grey: np.ndarray,
) -> None:
    face_on = build_matching_keyframes(pictarize_grey)[2]

    # Barely tilted, it is the face-on keyframe: the map back to the print is exact.
    untilted = tilted_keyframe(pictarize_grey, face_on["scale"], 0.0001, 0.0)
    assert (untilted["width"], untilted["height"]) == (face_on["width"], face_on["height"])
    assert np.abs(_offsets_to_nearest(untilted, face_on)).max() < 1e-6

    # At 45 degrees, the corners found again sit where the face-on detector found them, unbiased.
    offsets = _offsets_to_nearest(tilted_keyframe(pictarize_grey, face_on["scale"], 45.0, 30.0), face_on)
    close = np.linalg.norm(offsets, axis=1) < 3.0
    assert close.mean() > 0.4, close.mean()
    assert np.all(np.abs(offsets[close].mean(axis=0)) < 0.3), offsets[close].mean(axis=0)


def test_a_detailed_photo_rates_high_and_a_nearly_blank_one_low_with_its_blank_parts_named(
    pictarize_grey: np.ndarray,
) -> None:
    detailed = rate_findability(pictarize_grey, build_matching_keyframes(pictarize_grey))
    blank = np.full((600, 600), 200, np.uint8)
    blank[30:230, 380:580] = np.asarray(photo(200, 200, seed=5).convert("L"))
    sparse = rate_findability(blank, build_matching_keyframes(blank))

    assert detailed.rating >= 4 and detailed.found_share > sparse.found_share
    assert sparse.rating < detailed.rating
    assert {"bottom left", "bottom", "left"} <= set(sparse.weak_regions)
    assert "top right" not in sparse.weak_regions


def test_a_silhouette_whose_keyframes_keep_no_minima_compiles() -> None:
    # scikit-image's horse: black on white, so trained keyframes can be left with maxima only.
    compiled = compile_targets([Path(str(files("skimage") / "data" / "horse.png"))])

    (target,) = decode_mind(compiled.data)
    assert target["matchingData"] and compiled.reports[0].trained
