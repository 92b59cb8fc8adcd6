"""The print sheet: a PDF of the paper's size whose QR code a camera reads and whose photo is the photo.

Each sheet is rendered back to pixels by poppler's pdftoppm, a PDF reader of its own, and the QR code
is read by OpenCV's QR detector, as a phone's camera would read the print.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from arv.services import print_sheets
from arv.services.print_sheets import (
    INSTRUCTIONS,
    SHEET_SIZES,
    UnknownSheetSize,
    draws_every_letter,
    instruction_font,
    render_print_sheet,
)
from tests.support.images import encode, photo

PUBLIC_URL = "https://arv.example.com/ar/0f8fad5b-d9cb-469f-a165-70867728950e"
RENDER_DPI = 150
POINTS_PER_MM = 72 / 25.4
# The EXIF orientation tag: 6 means the stored picture is shown turned a quarter clockwise.
EXIF_ORIENTATION = 0x0112


@functools.lru_cache
def photo_jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(photo(width, height), "JPEG", quality=92, exif=exif.tobytes())


@functools.lru_cache
def sheet(size: str, width: int, height: int, orientation: int = 1, language: str = "en") -> bytes:
    return render_print_sheet(
        photo_jpeg(width, height, orientation), public_url=PUBLIC_URL, size=size, language=language
    )


def media_box(pdf: bytes) -> tuple[float, float]:
    """The page's width and height in points, as the PDF declares them."""
    [box] = re.findall(rb"/MediaBox\s*\[\s*([\d.\s]+)\]", pdf)
    left, bottom, right, top = (float(number) for number in box.split())
    return right - left, top - bottom


def rendered(pdf: bytes) -> np.ndarray:
    """The page as pdftoppm draws it at RENDER_DPI, RGB (as PPM: the same pixels as -png, written
    nine times faster)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "sheet.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", str(RENDER_DPI), "-singlefile", str(source), str(Path(folder) / "page")],
            check=True,
            timeout=60,
        )
        with Image.open(Path(folder) / "page.ppm") as page:
            return np.asarray(page.convert("RGB"))


@functools.lru_cache
def rendered_sheet(
    size: str, width: int, height: int, orientation: int = 1, language: str = "en"
) -> np.ndarray:
    return rendered(sheet(size, width, height, orientation, language))


def decoded_qr(page: np.ndarray) -> str:
    """What OpenCV reads in the page's QR code. Its ArUco-based detector, not the classic
    QRCodeDetector: that one takes corners of the test photo's dense pseudo-random detail for finder
    patterns and then misplaces the code's corners even where a phone reads it at once."""
    text, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(cv2.cvtColor(page, cv2.COLOR_RGB2GRAY))
    return text


def photo_region(page: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (left, top, right, bottom) of the page's coloured pixels: the QR code and the
    line are black and grey, so only the photo is coloured."""
    coloured = (page.max(axis=2) - page.min(axis=2)) > 40
    rows, columns = np.flatnonzero(coloured.any(axis=1)), np.flatnonzero(coloured.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def assert_region_shows(page: np.ndarray, region: tuple[int, int, int, int], shown: Image.Image) -> None:
    """The region of the page is the picture `shown`: same aspect, and pixel for pixel close."""
    left, top, right, bottom = region
    width, height = right - left, bottom - top
    assert width / height == pytest.approx(shown.width / shown.height, rel=0.02)
    expected = np.asarray(shown.convert("RGB").resize((width, height), Image.Resampling.BOX), dtype=np.int16)
    difference = np.abs(page[top:bottom, left:right].astype(np.int16) - expected)
    assert difference.mean() < 12, difference.mean()


@pytest.mark.parametrize("size", sorted(SHEET_SIZES))
def test_the_sheet_is_one_page_of_the_papers_size_with_a_readable_qr_code_of_the_public_page(
    size: str,
) -> None:
    pdf = sheet(size, 600, 800)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    width_mm, height_mm = SHEET_SIZES[size]
    assert media_box(pdf) == pytest.approx((width_mm * POINTS_PER_MM, height_mm * POINTS_PER_MM), abs=0.01)
    assert decoded_qr(rendered_sheet(size, 600, 800)) == PUBLIC_URL


@pytest.mark.parametrize("size", sorted(SHEET_SIZES))
def test_the_photo_fills_the_page_within_its_margins_with_its_aspect_kept(size: str) -> None:
    page = rendered_sheet(size, 600, 800)
    left, top, right, bottom = photo_region(page)
    assert_region_shows(page, (left, top, right, bottom), photo(600, 800))
    # As large as fits: the QR code and its line below take less than a quarter of the page's height,
    # the margins are at least 4 mm.
    page_height, page_width = page.shape[:2]
    margin = 4 / 25.4 * RENDER_DPI
    assert (bottom - top) > 0.7 * page_height and min(left, top, page_width - right) >= margin


def test_a_12_megapixel_landscape_photo_turns_the_a4_page_to_landscape() -> None:
    pdf = sheet("a4", 4000, 3000)
    width_mm, height_mm = SHEET_SIZES["a4"]
    assert media_box(pdf) == pytest.approx((height_mm * POINTS_PER_MM, width_mm * POINTS_PER_MM), abs=0.01)
    page = rendered(pdf)
    assert decoded_qr(page) == PUBLIC_URL
    region = photo_region(page)
    assert_region_shows(page, region, photo(4000, 3000))
    assert region[2] - region[0] > 0.75 * page.shape[1]


def test_the_photo_is_printed_as_its_exif_orientation_shows_it() -> None:
    # Stored 800 x 600 with orientation 6: a portrait photo, shown turned a quarter clockwise.
    pdf = sheet("10x15", 800, 600, orientation=6)
    width_mm, height_mm = SHEET_SIZES["10x15"]
    assert media_box(pdf) == pytest.approx((width_mm * POINTS_PER_MM, height_mm * POINTS_PER_MM), abs=0.01)
    page = rendered(pdf)
    assert_region_shows(page, photo_region(page), photo(800, 600).transpose(Image.Transpose.ROTATE_270))
    assert decoded_qr(page) == PUBLIC_URL


def test_the_russian_sheet_prints_its_line_in_a_font_that_has_cyrillic_letters() -> None:
    font, line = instruction_font(40, "ru")
    assert line == INSTRUCTIONS["ru"] and draws_every_letter(font, line)
    page = rendered(sheet("a5", 600, 800, language="ru"))
    assert decoded_qr(page) == PUBLIC_URL


def test_without_a_font_that_has_cyrillic_the_sheet_falls_back_to_the_english_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(print_sheets, "FONT_FILES", ())
    font, line = instruction_font(40, "ru")
    assert line == INSTRUCTIONS["en"] and draws_every_letter(font, line)
    assert not draws_every_letter(font, INSTRUCTIONS["ru"])


def test_an_unknown_paper_size_is_refused_with_the_sizes_there_are() -> None:
    with pytest.raises(UnknownSheetSize, match=r"'a3'; the sizes are a4, a5, 10x15"):
        render_print_sheet(photo_jpeg(600, 800), public_url=PUBLIC_URL, size="a3", language="en")


def test_a_file_that_is_no_photo_is_refused_with_a_reason() -> None:
    with pytest.raises(print_sheets.PrintSheetImageError, match="cannot be read"):
        render_print_sheet(b"not a picture", public_url=PUBLIC_URL, size="a4", language="en")


def test_a_png_photo_is_printed_too() -> None:
    png = encode(photo(500, 500), "PNG")
    page = rendered(render_print_sheet(png, public_url=PUBLIC_URL, size="a5", language="en"))
    assert_region_shows(page, photo_region(page), photo(500, 500))
    assert decoded_qr(page) == PUBLIC_URL
