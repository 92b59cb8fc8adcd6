"""Matching keyframes: MindAR's pyramid, detector, FREAK descriptors and cluster trees, stage by stage."""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from arv.mindar.clustering import MindARRandom, build_cluster_tree, hamming_distances
from arv.mindar.detector import binomial_blur, detect_extrema, halve, octave_count, prune_extrema
from arv.mindar.freak import descriptor_words, freak_descriptors
from arv.mindar.matching import build_matching_keyframes
from arv.mindar.pyramid import js_round, keyframe_scales, resize_box


def detailed_grey(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A grey picture with shapes and texture everywhere, like a printed photo."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (height // 10 + 1, width // 10 + 1), dtype=np.uint8)
    image = Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(8, width // 3)), y0 + int(rng.integers(8, height // 3))
        draw.ellipse((x0, y0, x1, y1), fill=int(rng.integers(0, 256)))
    return np.asarray(image.filter(ImageFilter.SMOOTH))


@pytest.fixture(scope="module")
def keyframes() -> list[dict[str, Any]]:
    return build_matching_keyframes(detailed_grey(330, 240))


def test_keyframe_scales_shrink_by_the_cube_root_of_two_down_to_100_pixels() -> None:
    scales = keyframe_scales(330, 240)

    assert scales[0] == 1 and isinstance(scales[0], int)
    assert min(330, 240) * scales[-1] == pytest.approx(100)
    ratios = [a / b for a, b in itertools.pairwise(scales[1:])]
    assert ratios == pytest.approx([2 ** (1 / 3)] * len(ratios))
    assert scales[0] / scales[1] < 1 / 0.95 * 2 ** (1 / 3)


def test_box_resize_averages_the_source_pixels_that_round_into_each_output_pixel() -> None:
    rng = np.random.default_rng(3)
    for (height, width), ratio in [((37, 53), 0.7937), ((40, 41), 0.5), ((101, 77), 0.3), ((31, 29), 1.7)]:
        image = rng.integers(0, 256, (height, width), dtype=np.uint8)
        expected = np.zeros((js_round(height * ratio), js_round(width * ratio)), dtype=np.uint8)
        for j, i in np.ndindex(expected.shape):
            rows = slice(js_round(j / ratio), min(js_round((j + 1) / ratio), height))
            cols = slice(js_round(i / ratio), min(js_round((i + 1) / ratio), width))
            box = image[rows, cols]
            expected[j, i] = box.sum() // box.size if box.size else 0

        assert np.array_equal(resize_box(image, ratio), expected)


def test_javascript_rounding_rounds_halves_up() -> None:
    assert [js_round(v) for v in (0.5, 1.5, 2.5, -0.5, -1.5, 2.4999)] == [1, 2, 3, 0, -1, 2]


def test_binomial_blur_is_the_normalised_1_4_6_4_1_filter_with_replicated_borders() -> None:
    image = np.random.default_rng(1).integers(0, 256, (23, 31), dtype=np.uint8)
    taps = np.array([1, 4, 6, 4, 1], dtype=np.float64)
    padded = np.pad(image.astype(np.float64), 2, mode="edge")
    rows = sum(taps[k] * padded[:, k : k + 31] for k in range(5))
    expected = sum(taps[k] * rows[k : k + 23, :] for k in range(5)) / 256

    assert np.array_equal(binomial_blur(image), expected.astype(np.float32))
    assert np.array_equal(binomial_blur(image.astype(np.float32)), expected.astype(np.float32))


def test_halving_averages_2x2_blocks_and_drops_an_odd_edge() -> None:
    image = np.arange(35, dtype=np.float32).reshape(5, 7)

    halved = halve(image)

    assert halved.shape == (2, 3)
    assert halved[1, 2] == np.mean(image[2:4, 4:6])


def test_octaves_stop_at_five_or_below_8_pixels() -> None:
    assert octave_count(1000, 1000) == 5
    assert octave_count(100, 150) == 4
    assert octave_count(7, 100) == 0


def test_keyframes_have_the_mind_file_keys_and_types(keyframes: list[dict[str, Any]]) -> None:
    assert [k["scale"] for k in keyframes] == keyframe_scales(330, 240)
    for keyframe in keyframes:
        assert list(keyframe) == [
            "maximaPoints",
            "minimaPoints",
            "maximaPointsCluster",
            "minimaPointsCluster",
            "width",
            "height",
            "scale",
        ]
        for kind, is_maximum in (("maximaPoints", True), ("minimaPoints", False)):
            for point in keyframe[kind]:
                assert list(point) == ["maxima", "x", "y", "scale", "angle", "descriptors"]
                assert point["maxima"] is is_maximum
                assert 0 <= point["x"] < keyframe["width"] and 0 <= point["y"] < keyframe["height"]
                assert point["scale"] in (2, 4, 8)
                assert -np.pi - 0.2 < point["angle"] < np.pi + 0.2
                assert len(point["descriptors"]) == 21
                assert all(type(word) is int and 0 <= word < 2**32 for word in point["descriptors"])
    assert sum(len(k["maximaPoints"]) + len(k["minimaPoints"]) for k in keyframes) > 300
    # MessagePack takes them as they are.
    assert msgpack.unpackb(msgpack.packb(keyframes)) == keyframes


def test_pruning_keeps_the_five_strongest_extrema_of_each_bucket_strongest_first() -> None:
    extrema = np.zeros((100, 100), dtype=np.float32)  # octave 1, buckets of 10 x 10 px
    in_one_bucket = {
        (10, 20): 4.0,
        (12, 22): -9.0,
        (14, 24): 7.0,
        (16, 26): 5.0,
        (18, 28): -6.0,
        (10, 26): 3.5,
    }
    for (y, x), value in in_one_bucket.items():
        extrema[y, x] = value
    extrema[70, 90] = 5.0  # another bucket

    score, octave, y, x = prune_extrema([extrema])

    assert score.tolist() == [-9.0, 7.0, -6.0, 5.0, 4.0, 5.0]
    assert list(zip(y.tolist(), x.tolist(), strict=True)) == [
        (12, 22),
        (14, 24),
        (18, 28),
        (16, 26),
        (10, 20),
        (70, 90),
    ]
    assert octave.tolist() == [1] * 6


def test_pruning_sees_one_extremum_per_2x2_block_preferring_the_lower_one() -> None:
    extrema = np.zeros((100, 100), dtype=np.float32)
    extrema[40, 40] = 9.0
    extrema[41, 40] = 4.0

    score, _, y, x = prune_extrema([extrema])

    assert (score.tolist(), y.tolist(), x.tolist()) == ([4.0], [41], [40])


def test_the_same_image_gives_the_same_keyframes(keyframes: list[dict[str, Any]]) -> None:
    assert build_matching_keyframes(detailed_grey(330, 240)) == keyframes


def test_a_flat_image_has_no_feature_points() -> None:
    flat = build_matching_keyframes(np.full((150, 200), 128, dtype=np.uint8))

    assert all(not k["maximaPoints"] and not k["minimaPoints"] for k in flat)
    assert flat[0]["maximaPointsCluster"] == {
        "rootNode": {"centerPointIndex": None, "leaf": True, "pointIndexes": []}
    }


def test_descriptors_of_a_rotated_image_match_the_originals_at_the_rotated_positions() -> None:
    image = detailed_grey(256, 256, seed=11)
    turned = np.ascontiguousarray(np.rot90(image, k=-1))  # 90 degrees clockwise
    original = build_matching_keyframes(image)[0]
    rotated = build_matching_keyframes(turned)[0]

    matched = total = 0
    for kind in ("maximaPoints", "minimaPoints"):
        before = original[kind]
        after = rotated[kind]
        # Clockwise turn of an n x n image: (x, y) -> (n - 1 - y, x).
        expected_xy = np.array([(255 - p["y"], p["x"]) for p in before])
        found_xy = np.array([(p["x"], p["y"]) for p in after])
        words_before = np.array([p["descriptors"] for p in before], dtype=np.uint32)
        words_after = np.array([p["descriptors"] for p in after], dtype=np.uint32)
        near = np.abs(expected_xy[:, None, :] - found_xy[None, :, :]).max(axis=2) <= 1.5
        bits = np.bitwise_count(words_before[:, None, :] ^ words_after[None, :, :]).sum(axis=2)
        matched += int((near & (bits <= 100)).any(axis=1).sum())
        total += len(before)
    # Pixel grids of the octaves do not rotate exactly onto each other, so not every point survives.
    assert total > 100
    assert matched / total > 0.5


def test_freak_descriptor_bits_are_ordered_pairwise_comparisons() -> None:
    samples = np.zeros((1, 37), dtype=np.float32)
    samples[0, 0] = 1.0  # point 0 is brighter than every other: its 36 comparisons are 0, all others 1

    words = descriptor_words(freak_descriptors(samples))[0]

    bits = np.unpackbits(words.astype(">u4").view(np.uint8))
    assert not bits[:36].any()
    assert bits[36:666].all()
    assert not bits[666:].any()


def test_hamming_distances_count_differing_bits() -> None:
    descriptors = np.random.default_rng(5).integers(0, 256, (6, 84), dtype=np.uint8)

    distances = hamming_distances(descriptors)

    for i, j in itertools.product(range(6), repeat=2):
        expected = int(np.unpackbits(descriptors[i] ^ descriptors[j]).sum())
        assert distances[i, j] == expected


def test_the_random_draws_are_mindars_generator_seeded_with_1234() -> None:
    seed = 1234
    expected = []
    for _ in range(3000):
        seed = (214013 * seed + 2531011) % (1 << 31)
        expected.append((seed >> 16) & 0x7FFF)

    assert MindARRandom().take(3000).tolist() == expected


def test_cluster_trees_hold_every_point_once_under_their_centres() -> None:
    descriptors = np.random.default_rng(2).integers(0, 256, (120, 84), dtype=np.uint8)

    tree = build_cluster_tree(descriptors)

    seen: list[int] = []

    def walk(node: dict[str, Any]) -> list[int]:
        if node["leaf"]:
            seen.extend(node["pointIndexes"])
            return list(node["pointIndexes"])
        members = []
        centres = [int(child["centerPointIndex"]) for child in node["children"]]
        assert centres == sorted(centres)
        for child in node["children"]:
            below = walk(child)
            assert int(child["centerPointIndex"]) in below
            members += below
        return members

    root = tree["rootNode"]
    assert root["centerPointIndex"] is None and root["leaf"] is False
    walk(root)
    assert sorted(seen) == list(range(120))
    assert build_cluster_tree(descriptors) == tree


def test_detection_reports_octave_positions_inside_the_image() -> None:
    image = detailed_grey(200, 160)
    space, extrema = detect_extrema(image)

    assert extrema.y.dtype == np.float32 and extrema.angle.dtype == np.float32
    assert set(np.unique(extrema.octave)) <= {1, 2, 3}
    for octave, y, x in zip(extrema.octave, extrema.y, extrema.x, strict=True):
        height, width = space.dog[octave].shape
        assert 5 <= y <= height - 6 and 5 <= x <= width - 6
