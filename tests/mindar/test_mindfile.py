"""The .mind file format: MindAR's own files read and written back byte for byte."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from arv.mindar.errors import MindFileError
from arv.mindar.mindfile import decode_mind, encode_mind
from tests.support.fixtures import MINDAR_FIXTURES

FIXTURES = MINDAR_FIXTURES


@pytest.mark.parametrize(
    "name", ["card.mind", "card.node-cpu.mind", "pictarize.mind", "pictarize.node-cpu.mind"]
)
def test_mindars_files_decode_and_encode_back_to_the_same_bytes(name: str) -> None:
    original = (FIXTURES / name).read_bytes()

    targets = decode_mind(original)

    assert len(targets) == 1
    assert set(targets[0]) == {"targetImage", "trackingData", "matchingData"}
    assert encode_mind(targets) == original


def _tiny_target(scale: float) -> dict:
    point = {
        "maxima": np.True_,
        "x": np.float32(12.0),
        "y": np.float64(3.25),
        "scale": np.int64(2),
        "angle": 0.0,
        "descriptors": np.arange(21, dtype=np.uint32) * 200_000_000,
    }
    return {
        "targetImage": {"width": np.int64(300), "height": 200},
        "trackingData": [
            {
                "data": np.zeros(4, np.uint8).tobytes(),
                "scale": scale,
                "width": 2,
                "height": 2,
                "points": [{"x": np.int64(1), "y": 0}],
            }
        ],
        "matchingData": [
            {
                "maximaPoints": [point],
                "minimaPoints": [],
                "maximaPointsCluster": {
                    "rootNode": {"leaf": True, "centerPointIndex": None, "pointIndexes": [0]}
                },
                "minimaPointsCluster": {
                    "rootNode": {"leaf": True, "centerPointIndex": None, "pointIndexes": []}
                },
                "width": 300,
                "height": 200,
                "scale": 1.0,
            }
        ],
    }


def test_numbers_are_written_as_javascript_writes_them() -> None:
    data = encode_mind([_tiny_target(0.5)])

    target = msgpack.unpackb(data)["dataList"][0]
    point = target["matchingData"][0]["maximaPoints"][0]
    # Integral values, even when given as floats, are MessagePack integers; others are float64.
    assert type(point["x"]) is int and point["x"] == 12
    assert type(point["angle"]) is int and point["angle"] == 0
    assert type(target["matchingData"][0]["scale"]) is int
    assert type(point["y"]) is float
    assert b"\xcb" + np.float64(3.25).byteswap().tobytes() in data
    assert point["descriptors"][20] == 4_000_000_000
    assert isinstance(target["trackingData"][0]["data"], bytes)


def test_keys_are_written_in_mindars_order() -> None:
    target = msgpack.unpackb(encode_mind([_tiny_target(0.5)]))["dataList"][0]

    assert list(target) == ["targetImage", "trackingData", "matchingData"]
    assert list(target["trackingData"][0]) == ["data", "scale", "width", "height", "points"]
    keyframe = target["matchingData"][0]
    assert list(keyframe) == [
        "maximaPoints",
        "minimaPoints",
        "maximaPointsCluster",
        "minimaPointsCluster",
        "width",
        "height",
        "scale",
    ]
    assert list(keyframe["maximaPoints"][0]) == ["maxima", "x", "y", "scale", "angle", "descriptors"]


def test_encoding_is_deterministic() -> None:
    assert encode_mind([_tiny_target(0.3)]) == encode_mind([_tiny_target(0.3)])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xc1garbage", "not valid MessagePack"),
        (msgpack.packb({"v": 1, "dataList": []}), "format version 1"),
        (msgpack.packb([1, 2, 3]), "no format version"),
        (msgpack.packb({"v": 2, "dataList": [{"targetImage": {}}]}), "lacks trackingData, matchingData"),
    ],
)
def test_files_that_are_not_version_2_mind_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(MindFileError, match=message):
        decode_mind(data)


def test_a_compact_file_holds_what_mindars_runtime_reads_and_nothing_else() -> None:
    original = (FIXTURES / "pictarize.mind").read_bytes()
    (target,) = decode_mind(original)

    compact = encode_mind([target], compact=True)

    (written,) = decode_mind(compact)
    assert len(compact) < 0.8 * len(original)
    # The tracker's level (128 px) whole; the 256-px one in its place, empty, its scale kept.
    follow, unread = target["trackingData"][1], target["trackingData"][0]
    # (Scales too are 32-bit floats.)
    assert {**written["trackingData"][1], "scale": None} == {**follow, "scale": None}
    assert written["trackingData"][1]["scale"] == pytest.approx(follow["scale"], rel=1e-6)
    assert {**written["trackingData"][0], "scale": None} == {
        "data": b"", "scale": None, "width": 0, "height": 0, "points": []
    }  # fmt: skip
    assert written["trackingData"][0]["scale"] == pytest.approx(unread["scale"], rel=1e-6)
    for theirs, ours in zip(target["matchingData"], written["matchingData"], strict=True):
        assert ours["maximaPointsCluster"] == theirs["maximaPointsCluster"]
        assert (ours["width"], ours["height"]) == (theirs["width"], theirs["height"])
        assert ours["scale"] == pytest.approx(theirs["scale"], rel=1e-6)
        for kind in ("maximaPoints", "minimaPoints"):
            assert len(ours[kind]) == len(theirs[kind])
            for mine, reference in zip(ours[kind], theirs[kind], strict=True):
                # The list says the kind; positions and angles as 32-bit floats; the rest unchanged.
                assert list(mine) == ["x", "y", "scale", "angle", "descriptors"]
                assert mine["descriptors"] == reference["descriptors"] and mine["scale"] == reference["scale"]
                for key in ("x", "y", "angle"):
                    assert mine[key] == pytest.approx(reference[key], rel=1e-6, abs=1e-6)
