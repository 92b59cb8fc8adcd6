"""The quality picture: feature points drawn where the photo has detail, its flat parts named weak.

The marker is a real compile (arv.mindar.compile_targets) of a small picture whose left half is a
detailed grey photo and whose right half is flat grey: the compiler's points all lie on the left.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
from PIL import Image

from arv.mindar import MindFileError, compile_targets
from arv.services.marker_quality import render_quality_picture, target_points, weak_regions
from tests.support.images import encode, photo

WIDTH, HEIGHT = 640, 480
# The EXIF orientation tag: 6 means the stored picture is shown turned a quarter clockwise.
EXIF_ORIENTATION = 0x0112


def half_flat_picture() -> Image.Image:
    """A grey detailed photo on the left half, flat grey on the right: colourless, so that whatever
    is coloured in the quality picture was drawn on it."""
    pixels = np.asarray(photo(WIDTH, HEIGHT).convert("L").convert("RGB")).copy()
    pixels[:, WIDTH // 2 :] = 128
    return Image.fromarray(pixels)


@functools.lru_cache
def half_flat_jpeg(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(half_flat_picture(), "JPEG", quality=92, exif=exif.tobytes())


@functools.lru_cache
def compiled(orientation: int = 1) -> bytes:
    return compile_targets(half_flat_jpeg(orientation)).data


def picture(orientation: int = 1, **options: int) -> np.ndarray:
    png = render_quality_picture(half_flat_jpeg(orientation), compiled(orientation), **options)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(np.int16)


def test_the_points_lie_on_the_detailed_half_and_the_flat_halfs_cells_are_weak() -> None:
    points = target_points(compiled())
    assert len(points.maxima) > 100 and len(points.minima) > 100 and len(points.tracking) >= 4
    assert np.mean(points.matching[:, 0] < 0.55) > 0.98
    regions = weak_regions(compiled(), WIDTH, HEIGHT)
    assert {(r["row"], r["column"]) for r in regions} == {
        (row, column) for row in range(4) for column in (2, 3)
    }
    assert all(r["points"] < 20 for r in regions)
    cells = [{key: value for key, value in r.items() if key != "points"} for r in regions]
    assert cells[0] == {"row": 0, "column": 2, "x": 320, "y": 0, "width": 160, "height": 120}
    assert cells[-1] == {"row": 3, "column": 3, "x": 480, "y": 360, "width": 160, "height": 120}


def test_a_photo_with_detail_everywhere_has_no_weak_cells() -> None:
    detailed = encode(photo(WIDTH, HEIGHT), "JPEG", quality=90)
    assert weak_regions(compile_targets(detailed).data, WIDTH, HEIGHT) == []


def test_the_picture_shades_the_flat_half_red_and_draws_the_points_on_the_detailed_half() -> None:
    pixels = picture()
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    left, right = slice(0, WIDTH // 2 - 8), slice(WIDTH // 2 + 8, WIDTH)
    # The shading: the flat grey turned red on the right, the photo's grey left as it was on the left.
    assert (red - green)[:, right].mean() > 40 and abs((red - green)[:, left].mean()) < 15
    # The minima's circles (cyan: blue and green well above red) on the left only.
    cyan = (blue - red > 80) & (green - red > 80)
    assert cyan[:, left].sum() > 1000 and cyan[:, right].sum() < 0.02 * cyan[:, left].sum()


def test_the_picture_keeps_the_photos_aspect_within_its_size_limit() -> None:
    assert picture(max_px=320).shape == (240, 320, 3)


def test_points_and_cells_follow_the_photo_as_its_exif_orientation_shows_it() -> None:
    # Stored with orientation 6: shown turned a quarter clockwise, the detailed half at the top.
    shown_width, shown_height = HEIGHT, WIDTH
    regions = weak_regions(compiled(6), shown_width, shown_height)
    assert {(r["row"], r["column"]) for r in regions} == {
        (row, column) for row in (2, 3) for column in range(4)
    }
    pixels = picture(6)
    assert pixels.shape == (shown_height, shown_width, 3)
    red_minus_green = pixels[..., 0] - pixels[..., 1]
    assert (
        red_minus_green[shown_height // 2 + 8 :].mean()
        > 40
        > abs(red_minus_green[: shown_height // 2 - 8].mean())
    )


def test_a_file_that_is_not_a_marker_is_refused() -> None:
    with pytest.raises(MindFileError):
        weak_regions(b"not a marker", WIDTH, HEIGHT)
    with pytest.raises(MindFileError):
        render_quality_picture(half_flat_jpeg(), b"\x80")
