"""Large test images made deterministically and quickly: the pictures that once took gigabytes to compile.

Each is a detailed picture (tests/support/images.py `photo`, drawn at an eighth of the size) enlarged
to the full size: a photo gets sensor noise at full resolution on top, a drawing stays flat and sharp so
that PNG compresses it as it does a poster (issue 11's 7700 x 7700 PNG was 225 KB).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from arv.mindar.limits import FULL_LIMIT_DECODE_COST, WEBP_DECODE_COST
from tests.support.images import photo

# Issue 11's picture: 7700 x 7700 RGBA PNG, under ARV_MAX_IMAGE_PIXELS (60 MP) but 237 MB decoded.
BIG_RGBA_SIDE = 7700
# A 12 MP phone photo, saved as a progressive JPEG.
PHONE_PHOTO_SIZE = (4000, 3000)
# The drawing is made this many times smaller and then enlarged.
_ENLARGEMENT = 8


def picture(width: int, height: int, *, seed: int, alpha: bool = False, noise: int = 0) -> np.ndarray:
    """An (H, W, 3) or, with `alpha`, (H, W, 4) uint8 picture.

    The alpha is a ramp from 25% to opaque with a fully transparent band across the top, so that the
    paper shows through. `noise` bounds the pixel noise added at full resolution (0: none).
    """
    small = np.asarray(photo(width // _ENLARGEMENT + 1, height // _ENLARGEMENT + 1, seed=seed))
    interpolation = cv2.INTER_LINEAR if noise else cv2.INTER_NEAREST
    rgb = cv2.resize(small, (width, height), interpolation=interpolation)
    if noise:
        rng = np.random.default_rng(seed)
        grain = rng.integers(0, noise, size=(height, width), dtype=np.uint8)
        for channel in range(3):
            np.add(rgb[..., channel], grain, out=rgb[..., channel], casting="unsafe")
    if not alpha:
        return rgb
    ramp = np.linspace(64, 255, width).astype(np.uint8)
    opacity = np.broadcast_to(ramp, (height, width)).copy()
    opacity[: height // 8] = 0
    return np.dstack([rgb, opacity])


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def jpeg_bytes(array: np.ndarray, *, progressive: bool, subsampling: int = 2, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(
        out, format="JPEG", quality=quality, progressive=progressive, subsampling=subsampling
    )
    return out.getvalue()


def big_rgba_png(path: Path) -> Path:
    """The 7700 x 7700 RGBA PNG of issue 11."""
    path.write_bytes(png_bytes(picture(BIG_RGBA_SIDE, BIG_RGBA_SIDE, seed=11, alpha=True)))
    return path


def phone_progressive_jpeg(path: Path) -> Path:
    """A 12 MP (4000 x 3000) progressive JPEG."""
    width, height = PHONE_PHOTO_SIZE
    path.write_bytes(jpeg_bytes(picture(width, height, seed=12, noise=16), progressive=True))
    return path


def max_pixels_size(max_pixels: int, aspect: float = 4 / 3) -> tuple[int, int]:
    """The largest width x height of the given aspect ratio holding at most `max_pixels` pixels."""
    height = int((max_pixels / aspect) ** 0.5)
    return max_pixels // height, height


def max_pixels_jpeg(path: Path, max_pixels: int) -> Path:
    """A progressive JPEG with as many pixels as the limit allows (4:3), colour not subsampled: the
    largest coefficient buffer libjpeg keeps for a colour JPEG that is accepted."""
    width, height = max_pixels_size(max_pixels)
    array = picture(width, height, seed=13, noise=16)
    path.write_bytes(jpeg_bytes(array, progressive=True, subsampling=0))
    return path


def cmyk_jpeg_at_its_limit(path: Path, max_pixels: int) -> Path:
    """A progressive CMYK JPEG (4:4:4, as CMYK always is) with as many pixels as its limit allows
    (three quarters of `max_pixels`): four components of coefficients, 8 bytes a pixel."""
    width, height = max_pixels_size(max_pixels * FULL_LIMIT_DECODE_COST // 8)
    image = Image.fromarray(picture(width, height, seed=15, noise=16)).convert("CMYK")
    image.save(path, format="JPEG", quality=85, progressive=True)
    return path


def webp_at_its_limit(path: Path, max_pixels: int) -> Path:
    """A lossy RGBA WebP with as many pixels as the WebP limit allows (a quarter of `max_pixels`)."""
    width, height = max_pixels_size(max_pixels * FULL_LIMIT_DECODE_COST // WEBP_DECODE_COST)
    Image.fromarray(picture(width, height, seed=14, alpha=True)).save(
        path, format="WEBP", quality=60, method=0
    )
    return path


# What a fresh process runs for each stage, exactly as the product does, after importing what that
# process imports (the API app, or every task module of the worker): the upload check in the API,
# the thumbnail job, and the marker job's compile (markers.compile_marker calls compile_targets so).
_API = "import arv.api.app"
_WORKER = "import arv.tasks.job_tasks, arv.tasks.periodic, arv.tasks.sweeper"
_STAGES = {
    "check": (
        f"{_API}; from arv.services.uploads import check_image",
        "check_image(data, max_pixels=settings.max_image_pixels)",
    ),
    "thumbnail": (
        f"{_WORKER}; from arv.services.previews import thumbnail_jpeg",
        "thumbnail_jpeg(data, max_px=settings.thumbnail_max_px)",
    ),
    "compile": (
        f"{_WORKER}; from arv.mindar import compile_targets",
        "compile_targets([data], max_pixels=settings.max_image_pixels)",
    ),
}
STAGES = tuple(_STAGES)

_CHILD = """
import json, sys
from arv.config import get_settings
settings = get_settings()
{imports}
data = open(sys.argv[1], "rb").read()
try:
    {call}
    outcome = "ok"
except Exception as error:
    outcome = f"{{type(error).__name__}}: {{error}}"
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"peak_bytes": peak, "outcome": outcome}}))
"""


def peak_memory(stage: str, path: Path, *, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Peak resident memory (bytes) of a fresh Python process that runs `stage` on the file, and the
    outcome (``ok`` or the exception). The interpreter's own share (imports) is included."""
    imports, call = _STAGES[stage]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(imports=imports, call=call), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return int(result["peak_bytes"]), str(result["outcome"])
