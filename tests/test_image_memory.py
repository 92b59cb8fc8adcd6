"""Every image that is accepted is checked, thumbnailed and compiled within 600 MB (issue 11).

Each stage runs in a fresh process, as the API, the thumbnail job and the marker job do, and its peak
resident memory (the interpreter's own share included) is read from getrusage. The band-by-band
conversions that keep it low must give exactly what converting the whole picture gave.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from arv.config import get_settings
from arv.mindar import images as loading
from arv.mindar.images import grey_from_rgb, load_target_image
from arv.services import previews
from arv.services.uploads import UploadRefused, check_image
from tests.support import big_images
from tests.support.images import photo

PEAK_LIMIT_BYTES = 600 * 1024 * 1024


# The costliest JPEG accepted is a progressive CMYK one at its limit (three quarters of
# ARV_MAX_IMAGE_PIXELS): libjpeg keeps all four components' coefficients, 8 bytes a pixel, whatever
# the scale it decodes at. (An RGB one without colour subsampling at the full limit keeps 6 bytes a
# pixel, 360 MB at 60 MP; benchmarks/image_memory.py measures it too.)
@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big-images")
    return {
        "7700 x 7700 RGBA PNG": big_images.big_rgba_png(folder / "poster.png"),
        "12 MP progressive JPEG": big_images.phone_progressive_jpeg(folder / "phone.jpg"),
        "progressive CMYK JPEG at its limit": big_images.cmyk_jpeg_at_its_limit(
            folder / "limit-cmyk.jpg", get_settings().max_image_pixels
        ),
        "RGBA WebP at the WebP limit": big_images.webp_at_its_limit(
            folder / "limit.webp", get_settings().max_image_pixels
        ),
    }


@pytest.mark.parametrize("case", ["7700 x 7700 RGBA PNG", "12 MP progressive JPEG",
                                  "progressive CMYK JPEG at its limit",
                                  "RGBA WebP at the WebP limit"])  # fmt: skip
@pytest.mark.parametrize("stage", big_images.STAGES)
def test_an_accepted_image_is_handled_within_600_mb(
    big_files: dict[str, Path], case: str, stage: str
) -> None:
    peak, outcome = big_images.peak_memory(stage, big_files[case])

    assert outcome == "ok"
    assert peak < PEAK_LIMIT_BYTES, f"{stage} of the {case} peaked at {peak / 2**20:.0f} MB"


def _rgba(width: int, height: int, seed: int) -> np.ndarray:
    rgb = np.asarray(photo(width, height, seed=seed))
    alpha = np.random.default_rng(seed).integers(0, 256, size=(height, width), dtype=np.uint8)
    return np.dstack([rgb, alpha])


def _grey_of_whole(image: Image.Image) -> np.ndarray:
    """The grey the loader gave before it worked in bands: the whole picture converted at once."""
    rgba = np.asarray(image.convert("RGBA")).astype(np.uint16)
    alpha = rgba[..., 3:4]
    flat = ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    return grey_from_rgb(flat)


def _encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB", "CMYK"])
def test_grey_converted_in_bands_equals_the_whole_picture_converted(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = Image.fromarray(_rgba(333, 211, seed=3)).convert(mode)
    if mode == "P":
        picture.info["transparency"] = 7
    data = _encoded(picture, "TIFF" if mode == "CMYK" else "PNG")
    monkeypatch.setattr(loading, "BAND_PIXELS", 1000)  # 3 rows a band, the last one short

    grey = load_target_image(data, max_pixels=10**6).grey

    with Image.open(io.BytesIO(data)) as decoded:
        expected = (
            _grey_of_whole(decoded) if mode != "CMYK" else grey_from_rgb(np.asarray(decoded.convert("RGB")))
        )
    assert np.array_equal(grey, expected)


def test_16_and_32_bit_grey_in_bands_are_scaled_by_the_whole_pictures_peak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = np.random.default_rng(4).integers(0, 200_000, size=(150, 170), dtype=np.int32)
    values[0, 0] = 400_000  # the peak is in the first band only
    data = _encoded(Image.fromarray(values, mode="I"), "TIFF")
    monkeypatch.setattr(loading, "BAND_PIXELS", 500)

    grey = load_target_image(data, max_pixels=10**6).grey

    wide = values.astype(np.int64) * 65535 // 400_000
    assert np.array_equal(grey, ((wide * 255 + 32767) // 65535).astype(np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_grey_is_turned_as_exif_transpose_turns_the_picture(orientation: int) -> None:
    picture = Image.fromarray(_rgba(190, 140, seed=orientation))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encoded(picture, exif=exif.tobytes())

    loaded = load_target_image(data, max_pixels=10**6)

    with Image.open(io.BytesIO(data)) as decoded:
        shown = ImageOps.exif_transpose(decoded)
        assert np.array_equal(loaded.grey, _grey_of_whole(shown))
        assert (loaded.width, loaded.height) == shown.size


def test_a_thumbnail_reduced_in_bands_equals_the_whole_picture_reduced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    picture = Image.fromarray(_rgba(1500, 1100, seed=5))
    monkeypatch.setattr(previews, "THUMBNAIL_BAND_PIXELS", 20_000)

    reduced = previews.reduced_rgb(picture, 3)

    assert reduced.tobytes() == picture.convert("RGB").reduce(3).tobytes()


def _png(width: int, height: int, rows: bytes, *, colour: int = 0, interlace: int = 0) -> bytes:
    """A grey (or other colour type) 8-bit PNG from its raw filtered rows."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _adam7_rows(width: int, height: int) -> bytes:
    """Filter byte 0 and grey pixels for each row of each of Adam7's seven passes."""
    out = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)):  # fmt: skip
        columns = len(range(x0, width, dx))
        if columns:
            out += (b"\x00" + bytes(range(columns % 256)) * (columns // 256 + 1))[: columns + 1] * len(
                range(y0, height, dy)
            )
    return out


def test_an_interlaced_png_is_accepted_whole_and_refused_one_row_short() -> None:
    width, height = 203, 149
    rows = _adam7_rows(width, height)
    whole = _png(width, height, rows, interlace=1)
    with Image.open(io.BytesIO(whole)) as decoded:
        decoded.load()  # Pillow reads it too: the rows counted are the rows it decodes

    assert check_image(whole, max_pixels=10**6).width == width
    with pytest.raises(UploadRefused, match="truncated or damaged"):
        check_image(_png(width, height, rows[:-5], interlace=1), max_pixels=10**6)


def test_a_png_with_an_unknown_row_filter_is_refused_as_damaged() -> None:
    rows = (b"\x00" + b"\x80" * 200) * 150
    broken = rows[: 201 * 70] + b"\x07" + rows[201 * 70 + 1 :]

    assert check_image(_png(200, 150, rows), max_pixels=10**6).height == 150
    with pytest.raises(UploadRefused, match="row filter 7"):
        check_image(_png(200, 150, broken), max_pixels=10**6)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_cut_short_jpeg_is_refused_though_it_is_decoded_at_an_eighth(progressive: bool) -> None:
    data = _encoded(photo(1600, 1200, seed=6), "JPEG", quality=90, progressive=progressive)

    assert check_image(data, max_pixels=10**7).width == 1600
    with pytest.raises(UploadRefused, match="truncated or damaged"):
        check_image(data[: len(data) * 2 // 3], max_pixels=10**7)


def test_a_webp_over_a_quarter_of_the_limit_is_refused_at_upload_and_by_the_compiler() -> None:
    from arv.mindar import ImageTooLargeError, compile_targets

    picture = Image.fromarray(np.asarray(photo(400, 300, seed=7)))
    data = _encoded(picture, "WEBP", quality=80)

    assert check_image(data, max_pixels=4 * 400 * 300).content_type == "image/webp"
    assert compile_targets([data], max_pixels=4 * 400 * 300).reports[0].width == 400
    with pytest.raises(UploadRefused, match="limit of 119999 for a WebP, which takes more memory") as refused:
        check_image(data, max_pixels=4 * 400 * 300 - 4)
    assert refused.value.status_code == 413
    with pytest.raises(ImageTooLargeError, match="limit of 0.1 MP for a WebP"):
        compile_targets([data], max_pixels=4 * 400 * 300 - 4)
    assert check_image(_encoded(picture, "PNG"), max_pixels=400 * 300).width == 400


def test_a_progressive_cmyk_jpeg_is_held_to_three_quarters_of_the_limit() -> None:
    from arv.mindar import ImageTooLargeError, compile_targets

    picture = photo(400, 300, seed=8)
    progressive_cmyk = _encoded(picture.convert("CMYK"), "JPEG", quality=90, progressive=True)
    limit = 400 * 300 * 4 // 3 + 4  # three quarters of it is just over the picture's 120,000 pixels

    assert check_image(progressive_cmyk, max_pixels=limit).width == 400
    with pytest.raises(UploadRefused, match="for a progressive CMYK JPEG, which takes more memory"):
        check_image(progressive_cmyk, max_pixels=limit - 8)
    with pytest.raises(ImageTooLargeError, match="for a progressive CMYK JPEG"):
        compile_targets([progressive_cmyk], max_pixels=limit - 8)
    # Sequential CMYK and progressive RGB without subsampling are not costlier than the limit allows.
    for allowed in (
        _encoded(picture.convert("CMYK"), "JPEG", quality=90),
        _encoded(picture, "JPEG", quality=90, progressive=True, subsampling=0),
    ):
        assert check_image(allowed, max_pixels=400 * 300).width == 400
