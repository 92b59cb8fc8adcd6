"""compile_targets: images in, one .mind with one target per image and a verdict a customer can act on."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from arv.mindar import (
    NotAnImageError,
    TargetUntrackableError,
    compile_targets,
    decode_mind,
)
from arv.mindar.compiler import working_resolution
from arv.mindar.mindfile import RUNTIME_TRACKING_LEVEL
from tests.support.fixtures import MINDAR_FIXTURES

FIXTURES = MINDAR_FIXTURES


def photo_like(height: int, width: int, *, seed: int = 0, blob: int = 8) -> np.ndarray:
    """A colourful picture with detail everywhere: random blobs of colour (``blob`` px), smoothly enlarged."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(max(height // blob, 2), max(width // blob, 2), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC))


def _jpeg(pixels: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92, **options)
    return buffer.getvalue()


def test_the_card_fixture_compiles_upright_into_a_good_target() -> None:
    # Exact: MindAR's own keyframes, the first of them the target at full size.
    compiled = compile_targets([FIXTURES / "card.png"], exact=True)

    (target,) = decode_mind(compiled.data)
    assert target["targetImage"] == {"width": 372, "height": 674}  # orientation tag 6 applied
    assert [(level["width"], level["height"]) for level in target["trackingData"]] == [(256, 464), (128, 232)]
    assert target["matchingData"][0]["width"] == 372
    (report,) = compiled.reports
    assert report.source == "card.png"
    assert report.verdict == "good"
    assert report.problems == ()


def test_a_jpeg_tagged_orientation_6_compiles_as_a_portrait_target() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _jpeg(photo_like(400, 600), exif=exif.tobytes())

    compiled = compile_targets([data])

    (target,) = decode_mind(compiled.data)
    assert target["targetImage"] == {"width": 400, "height": 600}
    assert (compiled.reports[0].width, compiled.reports[0].height) == (400, 600)


def test_the_same_input_gives_the_same_bytes() -> None:
    data = _jpeg(photo_like(300, 400, seed=4))

    first = compile_targets([data]).data
    second = compile_targets([data]).data

    assert first == second


def test_one_target_per_image_in_the_order_given() -> None:
    wide = photo_like(300, 450, seed=1)
    tall = photo_like(420, 300, seed=2)

    compiled = compile_targets([wide, tall])

    sizes = [(t["targetImage"]["width"], t["targetImage"]["height"]) for t in decode_mind(compiled.data)]
    assert sizes == [(450, 300), (300, 420)]
    assert [report.source for report in compiled.reports] == ["image 1", "image 2"]


def test_photos_are_reduced_to_the_working_side_before_compiling() -> None:
    compiled = compile_targets([photo_like(600, 900, seed=3, blob=16)], working_side=300, exact=True)

    (target,) = decode_mind(compiled.data)
    assert target["targetImage"] == {"width": 450, "height": 300}
    report = compiled.reports[0]
    assert (report.image_width, report.image_height) == (900, 600)
    assert report.keyframes[0].width == 450


def test_a_long_panorama_is_reduced_to_at_most_four_squares_of_the_working_side() -> None:
    panorama = np.zeros((1200, 12000), dtype=np.uint8)

    reduced = working_resolution(panorama, 1024)

    assert reduced.shape == (648, 6476)  # 4 * 1024**2 px at the panorama's proportions
    assert working_resolution(np.zeros((1000, 1500), dtype=np.uint8), 1024).shape == (1000, 1500)
    assert working_resolution(np.zeros((150, 40000), dtype=np.uint8), 1024).shape[0] == 128


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((400, 300, 3), 255, dtype=np.uint8),
        (200 + np.random.default_rng(1).integers(-3, 4, size=(400, 300))).astype(np.uint8),
    ],
    ids=["blank", "nearly flat"],
)
def test_an_image_too_uniform_to_track_is_refused_with_its_report(pixels: np.ndarray) -> None:
    with pytest.raises(TargetUntrackableError, match="too uniform") as refusal:
        compile_targets([pixels], labels=["plain.png"])

    assert str(refusal.value).startswith("plain.png: ")
    report = refusal.value.report
    assert report.verdict == "unusable"
    assert report.problems


def test_a_picture_blank_in_its_lower_half_is_weak_there() -> None:
    pixels = photo_like(400, 300, seed=5).copy()
    pixels[200:] = 255

    report = compile_targets([pixels]).reports[0]

    assert report.verdict == "weak: few details in the lower half"
    assert "lower half" in report.problems[0]


def test_a_picture_blank_on_its_left_is_weak_there() -> None:
    pixels = photo_like(300, 400, seed=6).copy()
    pixels[:, :200] = 240

    assert compile_targets([pixels]).reports[0].verdict == "weak: few details in the left half"


def test_the_report_counts_features_per_keyframe_and_points_per_tracking_level_as_json() -> None:
    compiled = compile_targets([photo_like(300, 300, seed=7)])

    report = compiled.reports[0].to_dict()
    (target,) = decode_mind(compiled.data)
    assert [k["feature_points"] for k in report["keyframes"]] == [
        len(k["maximaPoints"]) + len(k["minimaPoints"]) for k in target["matchingData"]
    ]
    # The file is compact: of the tracking levels it holds the one MindAR's runtime follows.
    levels = report["tracking_levels"]
    assert len(levels) == len(target["trackingData"]) == 2
    assert levels[RUNTIME_TRACKING_LEVEL]["points"] == len(
        target["trackingData"][RUNTIME_TRACKING_LEVEL]["points"]
    )
    assert target["trackingData"][0]["points"] == [] and levels[0]["points"] > 0
    assert json.loads(json.dumps(compiled.to_dict()))["targets"][0]["verdict"] == report["verdict"]


def test_progress_is_reported_from_start_to_finish() -> None:
    seen: list[tuple[float, str]] = []

    compile_targets(
        [photo_like(300, 300, seed=8), photo_like(300, 300, seed=9)],
        progress=lambda f, m: seen.append((f, m)),
    )

    fractions = [fraction for fraction, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any("image 2" in message for _, message in seen)


def test_a_working_side_below_the_smallest_target_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least 128 px"):
        compile_targets([photo_like(300, 300)], working_side=100)


def test_a_refused_image_is_named_by_its_position() -> None:
    with pytest.raises(NotAnImageError) as refusal:
        compile_targets([photo_like(300, 300), b"not an image at all"])

    assert refusal.value.source == "image 2"
