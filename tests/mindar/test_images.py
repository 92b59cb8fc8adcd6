"""Loading target images: what a person sees, in every awkward-but-valid format, and clear refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arv.mindar.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    MindARInputError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)
from arv.mindar.images import grey_from_rgb, load_grey_image, load_target_image
from tests.support.fixtures import MINDAR_FIXTURES

# MindAR's reference images and .mind files live beside the repository, in shared/fixtures/mindar.
FIXTURES = MINDAR_FIXTURES


def _encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def _marked_rgb(width: int = 600, height: int = 400) -> np.ndarray:
    """A mid-grey picture with a black square in its top-left corner, to see where that corner goes."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[:50, :50] = 0
    return pixels


def test_jpeg_tagged_orientation_6_loads_as_shown_upright_and_rotated_clockwise() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; shown rotated 90 degrees clockwise
    data = _encoded(Image.fromarray(_marked_rgb()), "JPEG", exif=exif.tobytes(), quality=95)

    grey = load_grey_image(data)

    assert grey.shape == (600, 400)  # rows, columns: a 400 x 600 portrait
    # The stored top-left corner is shown top-right after a clockwise quarter turn.
    assert grey[:40, -40:].mean() < 20
    assert grey[:40, :40].mean() > 100


def test_the_card_fixture_loads_with_its_orientation_tag_applied() -> None:
    grey = load_grey_image(FIXTURES / "card.png")

    assert grey.shape == (674, 372)


def test_grey_is_the_floor_of_the_mean_of_red_green_and_blue() -> None:
    rgb = np.array([[[1, 1, 2], [255, 255, 254], [0, 0, 2], [10, 20, 31]]], dtype=np.uint8)

    assert grey_from_rgb(rgb).tolist() == [[1, 254, 0, 20]]


def test_rgb_png_and_lossless_webp_give_mindars_grey_exactly() -> None:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    expected = (rgb.astype(int).sum(axis=2) // 3).astype(np.uint8)

    for data in (
        _encoded(Image.fromarray(rgb), "PNG"),
        _encoded(Image.fromarray(rgb), "WEBP", lossless=True),
    ):
        np.testing.assert_array_equal(load_grey_image(data), expected)


def test_transparency_is_flattened_onto_white_paper() -> None:
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)  # black everywhere
    rgba[:, :100, 3] = 0  # left half fully transparent
    rgba[:, 100:, 3] = 128  # right half half-transparent

    grey = load_grey_image(_encoded(Image.fromarray(rgba, "RGBA"), "PNG"))

    assert (grey[:, :100] == 255).all()
    assert (np.abs(grey[:, 100:].astype(int) - 127) <= 1).all()


def test_palette_image_with_a_transparent_colour_is_flattened_onto_white() -> None:
    image = Image.new("P", (200, 200), 0)
    image.putpalette([0, 0, 0, 200, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 100, 200))
    data = _encoded(image, "PNG", transparency=0)

    grey = load_grey_image(data)

    assert (grey[:, :100] == 200 // 3).all()
    assert (grey[:, 100:] == 255).all()


def test_sixteen_bit_grey_is_scaled_down_not_clipped() -> None:
    wide = np.zeros((200, 200), dtype=np.uint16)
    wide[:, :100] = 65535
    wide[:, 100:] = 32896  # 128 * 257
    data = _encoded(Image.fromarray(wide), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")

    grey = load_grey_image(data)

    assert (grey[:, :100] == 255).all()
    assert (grey[:, 100:] == 128).all()


def test_eight_bit_grey_image_is_taken_as_it_is() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(150, 160), dtype=np.uint8)

    np.testing.assert_array_equal(load_grey_image(_encoded(Image.fromarray(pixels, "L"), "PNG")), pixels)


def test_cmyk_jpeg_loads_with_white_paper_and_black_ink() -> None:
    cmyk = np.zeros((200, 200, 4), dtype=np.uint8)
    cmyk[:, 100:, 3] = 255  # full black ink on the right half
    data = _encoded(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100)

    grey = load_grey_image(data)

    assert grey.shape == (200, 200)
    assert grey[:, :90].mean() > 245
    assert grey[:, 110:].mean() < 10


def test_cmyk_with_a_broken_colour_profile_falls_back_to_the_plain_conversion() -> None:
    cmyk = np.zeros((200, 200, 4), dtype=np.uint8)
    cmyk[:, 100:, 3] = 255
    data = _encoded(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100, icc_profile=b"not a profile")

    grey = load_grey_image(data)

    assert grey[:, :90].mean() > 245
    assert grey[:, 110:].mean() < 10


def test_arrays_are_accepted_as_grey_rgb_rgba_and_sixteen_bit() -> None:
    rgb = _marked_rgb(300, 200)
    expected = grey_from_rgb(rgb)

    np.testing.assert_array_equal(load_grey_image(rgb), expected)
    np.testing.assert_array_equal(load_grey_image(expected), expected)
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(load_grey_image(opaque), expected)
    np.testing.assert_array_equal(load_grey_image(rgb.astype(np.uint16) * 257), expected)


def test_large_jpeg_may_be_decoded_at_a_reduced_scale_that_keeps_the_working_side() -> None:
    data = _encoded(Image.fromarray(_marked_rgb(2400, 1600)), "JPEG")

    loaded = load_target_image(data, working_side=700)

    assert loaded.grey.shape == (800, 1200)  # decoded at half scale: still at least 700 px on the short side
    assert (loaded.width, loaded.height) == (2400, 1600)  # the picture's own size


def test_full_size_of_a_reduced_jpeg_is_reported_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encoded(Image.fromarray(_marked_rgb(2400, 1600)), "JPEG", exif=exif.tobytes())

    loaded = load_target_image(data, working_side=700)

    assert loaded.grey.shape == (1200, 800)
    assert (loaded.width, loaded.height) == (1600, 2400)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"Dear customer,\nthis is not a picture.\n" * 20, NotAnImageError),
        (b"", NotAnImageError),
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="500" height="500"/>',
            UnsupportedImageFormatError,
        ),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 200, UnsupportedImageFormatError),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100, UnsupportedImageFormatError),
    ],
    ids=["text", "empty", "svg", "pdf", "heic"],
)
def test_files_that_are_not_images_we_read_are_refused_by_kind(data: bytes, error: type) -> None:
    with pytest.raises(error) as refusal:
        load_grey_image(data, label="upload.bin")

    assert str(refusal.value).startswith("upload.bin: ")
    assert "\n" not in str(refusal.value)


def test_an_image_format_pillow_reads_but_we_do_not_support_is_refused() -> None:
    data = _encoded(Image.fromarray(_marked_rgb(256, 256)), "ICO", sizes=[(256, 256)])

    with pytest.raises(UnsupportedImageFormatError, match="ICO images are not supported"):
        load_grey_image(data)


def test_pixel_limit_is_checked_from_the_header_before_any_decoding() -> None:
    claims_big = _encoded(Image.new("L", (4000, 3000)), "PNG")
    # Cut the pixel data off: were it decoded, the refusal would be about truncation instead.
    header_only = claims_big[:200]

    with pytest.raises(ImageTooLargeError, match="4000 x 3000"):
        load_grey_image(header_only, max_pixels=10_000_000)
    with pytest.raises(TruncatedImageError):
        load_grey_image(header_only, max_pixels=20_000_000)


def test_decompression_bomb_far_beyond_any_limit_is_refused_without_decoding() -> None:
    bomb = _encoded(Image.new("1", (30000, 30000)), "PNG")  # 900 MP in a few hundred kilobytes

    with pytest.raises(ImageTooLargeError, match="claims 900 MP"):
        load_grey_image(bomb)


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_refused(format: str) -> None:
    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 256, size=(300, 300, 3), dtype=np.uint8))
    data = _encoded(noisy, format)

    with pytest.raises(TruncatedImageError, match="truncated or damaged"):
        load_grey_image(data[: len(data) * 2 // 3])


def test_images_too_small_to_track_are_refused() -> None:
    with pytest.raises(ImageTooSmallError, match="at least 128 px"):
        load_grey_image(_encoded(Image.new("RGB", (600, 100)), "PNG"))


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(NotAnImageError, match="cannot read the file") as refusal:
        load_grey_image(tmp_path / "gone.jpg", label="gone.jpg")

    assert refusal.value.source == "gone.jpg"


def test_every_refusal_shares_one_base_class() -> None:
    for error in (
        NotAnImageError,
        UnsupportedImageFormatError,
        ImageTooLargeError,
        TruncatedImageError,
        ImageTooSmallError,
    ):
        assert issubclass(error, MindARInputError)
