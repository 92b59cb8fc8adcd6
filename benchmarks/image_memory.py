"""Peak memory of checking, thumbnailing and compiling the largest images ARV accepts (issue 11).

Run from the repository root:

    .venv/bin/python -m benchmarks.image_memory [--baseline-src PATH]

Each case is made here, deterministically: issue 11's 7700 x 7700 RGBA PNG (a drawing, so it
compresses to a few MB), a 12 MP (4000 x 3000) progressive JPEG, a progressive RGB JPEG without
colour subsampling at ARV_MAX_IMAGE_PIXELS (libjpeg keeps its coefficients, 6 bytes a pixel), and
the two kinds held to a lower limit (arv.mindar.limits), each at that limit: a progressive CMYK JPEG
(8 bytes a pixel, three quarters of it) and an RGBA WebP (24 bytes a pixel, a quarter of it).

Each stage runs in a fresh process exactly as the product runs it, after the imports of the process
that runs it (tests/support/big_images.py: `check_image` in the API, `thumbnail_jpeg` and
`compile_targets` in the worker, as the thumbnail and marker jobs call them), and its peak resident
memory (VmHWM, the interpreter's own share included) is printed beside the 600 MB target. With
--baseline-src, the same stages also run on another checkout's `src` folder (e.g. `git worktree add
/tmp/arv-before <commit>` then `--baseline-src /tmp/arv-before/src`), printed as the "before" column.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import big_images  # noqa: E402

from arv.config import get_settings  # noqa: E402

TARGET_MB = 600


def _cases(folder: Path) -> dict[str, Path]:
    limit = get_settings().max_image_pixels
    paths = {
        "RGBA PNG": big_images.big_rgba_png(folder / "poster.png"),
        "progressive JPEG": big_images.phone_progressive_jpeg(folder / "phone.jpg"),
        f"progressive JPEG, 4:4:4, the {limit / 1e6:.0f} MP limit": big_images.max_pixels_jpeg(
            folder / "limit.jpg", limit
        ),
        "progressive CMYK JPEG at its limit": big_images.cmyk_jpeg_at_its_limit(folder / "cmyk.jpg", limit),
        "RGBA WebP at its limit": big_images.webp_at_its_limit(folder / "limit.webp", limit),
    }
    cases = {}
    for kind, path in paths.items():
        with Image.open(path) as image:
            width, height = image.size
        cases[f"{width} x {height} {kind} ({width * height / 1e6:.0f} MP)"] = path
    return cases


def _peak_mb(stage: str, path: Path, src: Path | None) -> tuple[str, str]:
    env = None
    if src is not None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    peak, outcome = big_images.peak_memory(stage, path, env=env)
    return f"{peak / 2**20:,.0f} MB", outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src folder, run as 'before'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="arv-image-memory-") as folder:
        cases = _cases(Path(folder))
        print("| image | file | stage | target | before | now | outcome now |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, path in cases.items():
            size = f"{path.stat().st_size / 1e6:.1f} MB"
            for stage in big_images.STAGES:
                before = _peak_mb(stage, path, args.baseline_src)[0] if args.baseline_src else "-"
                now, outcome = _peak_mb(stage, path, None)
                row = (name, size, stage, f"{TARGET_MB} MB", before, now, outcome)
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
