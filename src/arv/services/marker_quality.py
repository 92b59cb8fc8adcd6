"""The quality picture of a marker: why a photo will or will not track, drawn on the photo itself.

The feature points MindAR matches (every keyframe of the compiled ``.mind`` file) and the points its
tracker follows are drawn where they lie on the photo as the compiler saw it (EXIF orientation
applied), and the cells of a grid over the photo that hold few of them are shaded: there a camera
finds nothing to hold on to. Pure functions: the caller reads the photo and the ``.mind`` file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from arv.mindar import MindFileError, decode_mind
from arv.services.previews import thumbnail_jpeg

# A cell holding fewer points than this share of the average cell's is weak (a cell with none always is).
WEAK_CELL_SHARE = 0.25
DEFAULT_GRID = 4
# Colours (RGBA) of what the picture shows: maxima and minima of the matcher's Difference of Gaussians,
# the tracker's points, and the shading and outline of a weak cell.
MAXIMA_COLOUR = (255, 200, 0, 255)
MINIMA_COLOUR = (0, 200, 255, 255)
TRACKING_COLOUR = (60, 230, 60, 255)
WEAK_FILL = (230, 30, 30, 90)
WEAK_OUTLINE = (230, 30, 30, 220)
# A point's circle on the full-size keyframe, as a share of the picture's longest side; a point of a
# smaller keyframe is a feature seen from further away and covers more of the photo, so its circle
# grows as the keyframe's scale shrinks.
POINT_RADIUS_SHARE = 1 / 250
MAX_RADIUS_GROWTH = 3.0


@dataclass(frozen=True)
class TargetPoints:
    """The points of a compiled target as (x, y) fractions of its width and height, in [0, 1].

    Parameters:
        maxima, minima: the matcher's feature points of every keyframe, shape (N, 2), with
            `maxima_scales` and `minima_scales` (N,) the scale of the keyframe each was found in.
        tracking: the tracker's points on the level it follows (the smallest), shape (M, 2).
    """

    maxima: np.ndarray
    maxima_scales: np.ndarray
    minima: np.ndarray
    minima_scales: np.ndarray
    tracking: np.ndarray

    @property
    def matching(self) -> np.ndarray:
        return np.concatenate([self.maxima, self.minima])


def target_points(mind_data: bytes) -> TargetPoints:
    """The points of the first target of a ``.mind`` file (ARV compiles one target per photo).

    A point at pixel (x, y) of a keyframe of width w and height h lies at ((x + 0.5) / w, (y + 0.5) / h)
    of the target, the centre of its pixel, whatever the keyframe's scale; the target is the photo
    as shown, reduced, so the same fractions place it on the photo.

    Raises:
        MindFileError: the data is not a ``.mind`` file, or it holds no target.
    """
    targets = decode_mind(mind_data)
    if not targets:
        raise MindFileError("the .mind file holds no target")
    target = targets[0]
    found: dict[str, list[tuple[float, float, float]]] = {"maximaPoints": [], "minimaPoints": []}
    for keyframe in target["matchingData"]:
        width, height, scale = keyframe["width"], keyframe["height"], float(keyframe["scale"])
        for kind, points in found.items():
            points.extend(((p["x"] + 0.5) / width, (p["y"] + 0.5) / height, scale) for p in keyframe[kind])
    # The tracker follows the last (smallest) tracking level.
    tracking: list[tuple[float, float]] = []
    if target["trackingData"]:
        level = target["trackingData"][-1]
        tracking = [
            ((p["x"] + 0.5) / level["width"], (p["y"] + 0.5) / level["height"]) for p in level["points"]
        ]
    maxima = np.array(found["maximaPoints"], dtype=np.float64).reshape(-1, 3)
    minima = np.array(found["minimaPoints"], dtype=np.float64).reshape(-1, 3)
    return TargetPoints(
        maxima=maxima[:, :2],
        maxima_scales=maxima[:, 2],
        minima=minima[:, :2],
        minima_scales=minima[:, 2],
        tracking=np.array(tracking, dtype=np.float64).reshape(-1, 2),
    )


def points_per_cell(fractions: np.ndarray, grid: int) -> np.ndarray:
    """How many of the points, given as (x, y) fractions of shape (N, 2), fall in each cell of a
    `grid` x `grid` division of the target: an array (grid, grid) indexed [row, column]."""
    cells = np.clip((fractions * grid).astype(np.int64), 0, grid - 1)
    counts = np.zeros((grid, grid), dtype=np.int64)
    np.add.at(counts, (cells[:, 1], cells[:, 0]), 1)
    return counts


def weak_regions(mind_data: bytes, width: int, height: int, *, grid: int = DEFAULT_GRID) -> list[dict]:
    """The cells of a `grid` x `grid` division of the photo that hold few feature points, row by row.

    A cell is weak when it holds fewer than WEAK_CELL_SHARE of the points an average cell holds (or
    none). Each is {"row", "column", "points", "x", "y", "width", "height"}: its place in the grid
    (from the top left, from 0), the matcher's points in it (every keyframe counted, as the compiler's
    report counts them), and its rectangle in pixels of the photo of `width` x `height` as shown.

    Raises:
        MindFileError: the data is not a ``.mind`` file, or it holds no target.
        ValueError: grid is less than 1.
    """
    if grid < 1:
        raise ValueError(f"grid must be at least 1, not {grid}")
    counts = points_per_cell(target_points(mind_data).matching, grid)
    enough = WEAK_CELL_SHARE * counts.sum() / counts.size
    regions = []
    for row in range(grid):
        for column in range(grid):
            points = int(counts[row, column])
            if points == 0 or points < enough:
                left, top = column * width // grid, row * height // grid
                regions.append(
                    {
                        "row": row,
                        "column": column,
                        "points": points,
                        "x": left,
                        "y": top,
                        "width": (column + 1) * width // grid - left,
                        "height": (row + 1) * height // grid - top,
                    }
                )
    return regions


def render_quality_picture(
    image_data: bytes, mind_data: bytes, *, max_px: int = 1024, grid: int = DEFAULT_GRID
) -> bytes:
    """The photo (as shown, longest side at most `max_px`) with its weak cells shaded red and its
    points drawn on top: matcher maxima and minima as circles in two colours, tracker points as
    crosses. A PNG.

    Raises:
        PreviewInputError: the photo cannot be read.
        MindFileError: the data is not a ``.mind`` file, or it holds no target.
    """
    points = target_points(mind_data)
    with Image.open(io.BytesIO(thumbnail_jpeg(image_data, max_px=max_px))) as shown:
        picture = shown.convert("RGBA")
    width, height = picture.size
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    outline_px = max(1, round(max(width, height) / 500))
    for cell in weak_regions(mind_data, width, height, grid=grid):
        box = (cell["x"], cell["y"], cell["x"] + cell["width"] - 1, cell["y"] + cell["height"] - 1)
        draw.rectangle(box, fill=WEAK_FILL, outline=WEAK_OUTLINE, width=outline_px)
    picture = Image.alpha_composite(picture, overlay)
    draw = ImageDraw.Draw(picture)
    radius = max(2.0, max(width, height) * POINT_RADIUS_SHARE)
    size = np.array([width, height], dtype=np.float64)
    for fractions, scales, colour in (
        (points.maxima, points.maxima_scales, MAXIMA_COLOUR),
        (points.minima, points.minima_scales, MINIMA_COLOUR),
    ):
        growth = np.minimum(1 / np.sqrt(np.maximum(scales, 1e-6)), MAX_RADIUS_GROWTH)
        for (x, y), grown in zip(fractions * size, radius * growth, strict=True):
            draw.ellipse((x - grown, y - grown, x + grown, y + grown), outline=colour, width=outline_px)
    arm = radius * 2.5
    for x, y in points.tracking * size:
        draw.line((x - arm, y, x + arm, y), fill=TRACKING_COLOUR, width=outline_px + 1)
        draw.line((x, y - arm, x, y + arm), fill=TRACKING_COLOUR, width=outline_px + 1)
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()
