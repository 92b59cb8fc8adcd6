"""The print sheet of an AR content item: a one-page PDF at print resolution holding the photo, the QR
code of its public page and one line telling the viewer what to do.

The page is exactly the paper's size (its MediaBox in points is the paper in millimetres); the photo is
as large as the paper allows with margins, its aspect kept, the page turned to landscape when that
makes the photo larger; the QR code is black on white with its quiet zone and big enough to scan from
a hand's length. The photo is never held at full size: a JPEG is decoded at a reduced DCT scale and
any picture is box-reduced before the final resize (as the thumbnails are).
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from arv.services.previews import EXIF_ORIENTATION, as_shown, reduced_rgb
from arv.services.qr_codes import BORDER_MODULES, ERROR_CORRECTION

# Paper sizes by the name the console offers, in millimetres, portrait (width, height).
SHEET_SIZES = {"a4": (210, 297), "a5": (148, 210), "10x15": (100, 150)}
PRINT_DPI = 300
MM_PER_INCH = 25.4
# The margin around everything, and the gap between the photo and the QR code, as a share of the
# paper's short side: 10.5 mm on A4, 5 mm on 10x15.
MARGIN_SHARE = 0.05
# The QR symbol (without its quiet zone) as a share of the short side, never below QR_MIN_MM: 29 mm on
# A4, 24 mm on A5 and 10x15; a phone reads such a code from 20-30 cm, and finds it beside a busy photo.
QR_SHARE = 0.14
QR_MIN_MM = 24.0
# The line's type size (em) as a share of the short side, never below TEXT_MIN_MM: about 9.5 pt on
# A4, 7 pt on 10x15.
TEXT_SHARE = 0.016
TEXT_MIN_MM = 2.4
LINE_SPACING = 1.3
TEXT_COLOUR = (34, 34, 34)
# The page goes into the PDF as one JPEG: high quality, and no chroma subsampling, so the QR code's
# edges stay sharp.
JPEG_QUALITY = 92
# What the sheet tells the person holding it, per language; any other language reads English.
INSTRUCTIONS = {
    "en": "Point your phone's camera at the QR code, then at the photo",
    "ru": "Наведите камеру телефона на QR-код, а затем на фотографию",
}
# Fonts tried for the line, in order, before Pillow's own (which has no Cyrillic): DejaVu Sans where
# Debian (fonts-dejavu-core), Fedora, Alpine and Arch put it.
FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
# A private-use character no font draws: what a font shows for a character it lacks.
_MISSING_GLYPH_PROBE = "\ue000"
_QUARTER_TURN_ORIENTATIONS = frozenset({5, 6, 7, 8})


class UnknownSheetSize(ValueError):
    """A paper size the print sheet does not offer; the message lists the ones it does."""


class PrintSheetImageError(Exception):
    """The photo cannot be read for the print sheet; the message says why."""


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Box:
    """A rectangle on the page, in pixels at PRINT_DPI."""

    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class SheetLayout:
    """Where the photo, the QR symbol (its dark part: the quiet zone lies in the margins and gaps
    around it, which are wider) and the lines of text go on a page, in pixels at PRINT_DPI."""

    page_width: int
    page_height: int
    photo: Box
    qr: Box
    text_left: int
    text_top: int
    lines: tuple[str, ...]


def mm_to_px(mm: float) -> int:
    return round(mm / MM_PER_INCH * PRINT_DPI)


def render_print_sheet(image_data: bytes, *, public_url: str, size: str, language: str) -> bytes:
    """The print sheet as the bytes of a one-page PDF.

    Parameters:
        image_data: the photo as uploaded (any format Pillow reads; EXIF orientation is applied).
        public_url: the content's public page, encoded in the QR code.
        size: a key of SHEET_SIZES ("a4", "a5", "10x15").
        language: "en" or "ru", the language of the line under the QR code.

    Raises:
        UnknownSheetSize: `size` is not one of SHEET_SIZES.
        PrintSheetImageError: the photo cannot be read.
    """
    if size not in SHEET_SIZES:
        raise UnknownSheetSize(
            f"there is no print sheet of size {size!r}; the sizes are {', '.join(SHEET_SIZES)}"
        )
    paper = SHEET_SIZES[size]
    short_mm = min(paper)
    font, line = instruction_font(mm_to_px(max(TEXT_MIN_MM, short_mm * TEXT_SHARE)), language)
    qr_modules = _qr_matrix(public_url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_data)) as opened:
                orientation = opened.getexif().get(EXIF_ORIENTATION, 1)
                stored_width, stored_height = opened.size
                turned = orientation in _QUARTER_TURN_ORIENTATIONS
                shown = (stored_height, stored_width) if turned else (stored_width, stored_height)
                layout = choose_layout(paper, shown, qr_modules=len(qr_modules), font=font, line=line)
                photo = _photo_at(opened, orientation, layout.photo, turned=turned)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PrintSheetImageError(f"the photo cannot be read for the print sheet ({exc})") from exc
    page = Image.new("RGB", (layout.page_width, layout.page_height), "white")
    page.paste(photo, (layout.photo.left, layout.photo.top))
    del photo
    code, quiet = _qr_image(qr_modules, layout.qr.width)
    page.paste(code, (layout.qr.left - quiet, layout.qr.top - quiet))
    _draw_lines(page, layout, font)
    page_mm = paper if layout.page_width < layout.page_height else paper[::-1]
    out = io.BytesIO()
    page.save(
        out,
        format="PDF",
        # The resolution that makes the page exactly the paper (the pixel grid rounds it by < 0.1 mm).
        dpi=(layout.page_width * MM_PER_INCH / page_mm[0], layout.page_height * MM_PER_INCH / page_mm[1]),
        quality=JPEG_QUALITY,
        subsampling=0,
        title="ARV print sheet",
    )
    return out.getvalue()


def choose_layout(
    paper_mm: tuple[int, int], photo_size: tuple[int, int], *, qr_modules: int, font: Font, line: str
) -> SheetLayout:
    """The layout giving the photo the largest area: on the portrait or the landscape page, with the QR
    code and the line below the photo (side by side) or beside it (the line under the code).

    Parameters:
        paper_mm: the paper's (width, height) in millimetres, portrait.
        photo_size: the photo's (width, height) as shown, in pixels (only its aspect counts).
        qr_modules: the QR symbol's side in modules, without the quiet zone.
    """
    short_mm = min(paper_mm)
    margin = mm_to_px(short_mm * MARGIN_SHARE)
    symbol = qr_modules * max(1, round(mm_to_px(max(QR_MIN_MM, short_mm * QR_SHARE)) / qr_modules))
    line_height = _line_height(font)
    portrait = (mm_to_px(paper_mm[0]), mm_to_px(paper_mm[1]))
    candidates = []
    for page_width, page_height in (portrait, portrait[::-1]):
        content_width, content_height = page_width - 2 * margin, page_height - 2 * margin
        # Below: the photo centred at the top, under it the code and the line to its right, the pair
        # centred and the line centred on the code.
        lines = _wrapped(line, font, content_width - symbol - margin)
        text_width = max((math.ceil(font.getlength(text)) for text in lines), default=0)
        band_height = max(symbol, len(lines) * line_height)
        photo = _fitted(photo_size, content_width, content_height - margin - band_height)
        if photo is not None:
            band_left = (page_width - (symbol + margin + text_width)) // 2
            band_top = margin + photo[1] + margin
            candidates.append(
                SheetLayout(
                    page_width,
                    page_height,
                    Box((page_width - photo[0]) // 2, margin, *photo),
                    Box(band_left, band_top + (band_height - symbol) // 2, symbol, symbol),
                    band_left + symbol + margin,
                    band_top + (band_height - len(lines) * line_height) // 2,
                    lines,
                )
            )
        # Beside: the photo on the left, the code to its right with the line under it, the column's
        # foot level with the photo's (or at the top margin when the column is the taller).
        lines = _wrapped(line, font, symbol)
        column_height = symbol + margin // 2 + len(lines) * line_height
        photo = _fitted(photo_size, content_width - margin - symbol, content_height)
        if photo is not None and column_height <= content_height:
            left = (page_width - (photo[0] + margin + symbol)) // 2
            top = (page_height - photo[1]) // 2
            column_top = max(margin, top + photo[1] - column_height)
            column_left = left + photo[0] + margin
            candidates.append(
                SheetLayout(
                    page_width,
                    page_height,
                    Box(left, top, *photo),
                    Box(column_left, column_top, symbol, symbol),
                    column_left,
                    column_top + symbol + margin // 2,
                    lines,
                )
            )
    # The first of equals wins: the portrait page, the code below.
    return max(candidates, key=lambda layout: layout.photo.width * layout.photo.height)


def _fitted(photo_size: tuple[int, int], width: int, height: int) -> tuple[int, int] | None:
    """The largest size of the photo's aspect inside width x height, or None when nothing fits."""
    if width <= 0 or height <= 0:
        return None
    scale = min(width / photo_size[0], height / photo_size[1])
    return max(1, math.floor(photo_size[0] * scale)), max(1, math.floor(photo_size[1] * scale))


def _photo_at(opened: Image.Image, orientation: object, box: Box, *, turned: bool) -> Image.Image:
    """The photo, turned as shown, resized to exactly the box, never copied at full size."""
    stored_box = (box.height, box.width) if turned else (box.width, box.height)
    opened.draft(opened.mode, stored_box)  # a JPEG decodes at the smallest DCT scale still >= the box
    opened.load()
    width, height = opened.size
    # Box-reduce to no less than twice the box before the final Lanczos resize, as Image.thumbnail does.
    factor = min(width // stored_box[0], height // stored_box[1]) // 2
    # An RGB picture not worth reducing is resized as decoded: a converted copy would double its memory.
    rgb = opened if opened.mode == "RGB" and factor <= 1 else reduced_rgb(opened, factor)
    # Turned once small: the resize is made in the stored orientation, to the box turned back.
    return as_shown(rgb.resize(stored_box, Image.Resampling.LANCZOS), orientation)


def _qr_matrix(public_url: str) -> np.ndarray:
    """The QR symbol of `public_url`: True where a module is dark, without the quiet zone."""
    code = segno.make(public_url, error=ERROR_CORRECTION, micro=False)
    return np.array(code.matrix, dtype=bool)


def _qr_image(modules: np.ndarray, symbol_px: int) -> tuple[Image.Image, int]:
    """The code black on white with its quiet zone, the symbol `symbol_px` pixels square (a whole
    number per module), and the width of the quiet zone in pixels."""
    module_px = symbol_px // modules.shape[0]
    framed = np.pad(modules, BORDER_MODULES, constant_values=False)
    pixels = np.where(framed, 0, 255).astype(np.uint8).repeat(module_px, axis=0).repeat(module_px, axis=1)
    return Image.fromarray(pixels).convert("RGB"), BORDER_MODULES * module_px


def _draw_lines(page: Image.Image, layout: SheetLayout, font: Font) -> None:
    draw = ImageDraw.Draw(page)
    for number, text in enumerate(layout.lines):
        top = layout.text_top + number * _line_height(font)
        draw.text((layout.text_left, top), text, font=font, fill=TEXT_COLOUR)


def _line_height(font: Font) -> int:
    return math.ceil(font.size * LINE_SPACING) if isinstance(font, ImageFont.FreeTypeFont) else 12


def _wrapped(text: str, font: Font, width: int) -> tuple[str, ...]:
    """The text broken between words into lines no wider than `width` pixels (a word longer than the
    width stands alone on its line)."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(word)
    return tuple(lines)


def instruction_font(size_px: int, language: str) -> tuple[Font, str]:
    """The line the sheet prints in `language` and a font of `size_px` pixels that draws every letter
    of it; the English line in Pillow's own font when no font at hand has the letters."""
    line = INSTRUCTIONS.get(language, INSTRUCTIONS["en"])
    for path in FONT_FILES:
        found = _font_file(path, size_px)
        if found is not None and draws_every_letter(found, line):
            return found, line
    fallback = ImageFont.load_default(size=size_px)
    return (fallback, line) if draws_every_letter(fallback, line) else (fallback, INSTRUCTIONS["en"])


@functools.lru_cache(maxsize=16)
def _font_file(path: str, size_px: int) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, size_px)
    except OSError:
        return None


def draws_every_letter(font: Font, text: str) -> bool:
    """Whether the font has a glyph of its own for every letter of `text` (not its missing-glyph box)."""
    missing = _glyph(font, _MISSING_GLYPH_PROBE)
    return all(_glyph(font, letter) != missing for letter in set(text) if letter.isalpha())


def _glyph(font: Font, letter: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(letter)
    return mask.size, bytes(mask)
