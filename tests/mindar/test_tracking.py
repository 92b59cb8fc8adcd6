"""Tracking data: the 256 and 128 px levels and their template points, as MindAR's compiler makes them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import msgpack
import numpy as np
import pytest
from PIL import Image

from arv.mindar.images import grey_from_rgb
from arv.mindar.mindfile import decode_mind
from arv.mindar.tracking import build_tracking_levels, extract_tracking_points, resize_box_average
from tests.support.fixtures import MINDAR_FIXTURES
from tests.support.mindar_client import mind_compiled_by_mindar, picture_as_seen

FIXTURES = MINDAR_FIXTURES
# A photo no fixture was compiled from, for MindAR's compiler (its committed .mind is read when it is
# MindAR's output for exactly these pixels: tests/support/mindar_client.py).
PHOTO = Path(str(files("skimage") / "data" / "chelsea.png"))


def _reference_tracking(name: str) -> list[dict]:
    content = msgpack.unpackb((FIXTURES / f"{name}.node-cpu.mind").read_bytes())
    return content["dataList"][0]["trackingData"]


def _grey_tag_not_applied(file: str) -> np.ndarray:
    # The reference files were compiled from the stored pixels, orientation tag not applied.
    return grey_from_rgb(np.asarray(Image.open(FIXTURES / file).convert("RGB")))


def _points(level: dict) -> list[tuple[int, int]]:
    return [(point["x"], point["y"]) for point in level["points"]]


def test_card_tracking_levels_equal_mindars_byte_for_byte() -> None:
    reference = _reference_tracking("card")

    levels = [level.to_mind() for level in build_tracking_levels(_grey_tag_not_applied("card.png"))]

    assert levels == reference


def test_pictarize_tracking_levels_agree_with_mindar_up_to_jpeg_decoding() -> None:
    reference = _reference_tracking("pictarize")

    levels = [level.to_mind() for level in build_tracking_levels(_grey_tag_not_applied("pictarize.jpg"))]

    for level, expected in zip(levels, reference, strict=True):
        assert (level["width"], level["height"], level["scale"]) == (
            expected["width"],
            expected["height"],
            expected["scale"],
        )
        # Node's JPEG decoder rounds a few pixels differently (by 1 or 2 grey levels) ...
        ours = np.frombuffer(level["data"], np.uint8).astype(int)
        theirs = np.frombuffer(expected["data"], np.uint8).astype(int)
        assert np.abs(ours - theirs).max() <= 2
        # ... which moves almost no tracking point.
        common = set(_points(level)) & set(_points(expected))
        assert len(common) >= 0.9 * len(expected["points"])


@pytest.mark.parametrize("name", ["card", "pictarize"])
def test_points_from_mindars_own_level_pixels_are_mindars_points_in_mindars_order(name: str) -> None:
    for expected in _reference_tracking(name):
        pixels = np.frombuffer(expected["data"], np.uint8).reshape(expected["height"], expected["width"])

        points = extract_tracking_points(pixels)

        assert [tuple(point) for point in points.tolist()] == _points(expected)


def _box_average_by_loops(grey: np.ndarray, ratio: float) -> np.ndarray:
    """The resize written plainly, pixel by pixel, as the specification to compare against."""

    def js_round(value: float) -> int:
        return int(np.floor(value + 0.5))

    height, width = js_round(grey.shape[0] * ratio), js_round(grey.shape[1] * ratio)
    out = np.zeros((height, width), dtype=np.uint8)
    for i in range(width):
        x1, x2 = js_round(i / ratio), min(js_round((i + 1) / ratio) - 1, grey.shape[1] - 1)
        for j in range(height):
            y1, y2 = js_round(j / ratio), min(js_round((j + 1) / ratio) - 1, grey.shape[0] - 1)
            out[j, i] = int(np.floor(grey[y1 : y2 + 1, x1 : x2 + 1].astype(float).mean()))
    return out


@pytest.mark.parametrize(("shape", "ratio"), [((97, 131), 0.37), ((120, 80), 0.5), ((64, 50), 256 / 333)])
def test_box_average_resize_matches_the_pixel_by_pixel_definition(
    shape: tuple[int, int], ratio: float
) -> None:
    grey = np.random.default_rng(5).integers(0, 256, size=shape, dtype=np.uint8)

    np.testing.assert_array_equal(resize_box_average(grey, ratio), _box_average_by_loops(grey, ratio))


def test_enlarging_a_small_target_leaves_no_black_rows_or_columns() -> None:
    # MindAR's resize writes zeros where an enlarged pixel covers no source pixel; ours repeats it.
    grey = np.full((150, 200), 180, dtype=np.uint8)

    levels = build_tracking_levels(grey)

    assert (levels[0].width, levels[0].height) == (341, 256)
    assert (levels[0].grey == 180).all()


def test_a_blank_image_has_no_tracking_points() -> None:
    levels = build_tracking_levels(np.full((400, 300), 200, dtype=np.uint8))

    assert [len(level.points) for level in levels] == [0, 0]


def test_faint_noise_gives_no_tracking_points() -> None:
    rng = np.random.default_rng(11)
    faint = (200 + rng.integers(-2, 3, size=(400, 400))).astype(np.uint8)

    assert [len(level.points) for level in build_tracking_levels(faint)] == [0, 0]


def test_tracking_points_keep_a_tenth_of_the_shortest_side_apart() -> None:
    rng = np.random.default_rng(2)
    texture = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    grey = np.array(Image.fromarray(texture).resize((512, 512), Image.Resampling.BILINEAR))

    for level in build_tracking_levels(grey):
        points = level.points
        assert len(points) > 4
        gap = min(level.width, level.height) // 10
        distances = np.abs(points[:, None, :] - points[None, :, :]).max(axis=2)
        np.fill_diagonal(distances, gap + 1)
        assert distances.min() > gap


@pytest.mark.node
def test_tracking_levels_of_a_photo_equal_those_of_mindars_own_compiler() -> None:
    rgb = picture_as_seen(PHOTO)
    (reference,) = decode_mind(mind_compiled_by_mindar([rgb]))

    levels = [level.to_mind() for level in build_tracking_levels(grey_from_rgb(rgb))]

    assert levels == reference["trackingData"]
