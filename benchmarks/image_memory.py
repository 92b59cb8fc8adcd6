"""Peak memory of checking, thumbnailing and compiling the largest images ARV accepts (issue 11).

Run from the repository root:

    .venv/bin/python -m benchmarks.image_memory [--baseline-src PATH]

Each case is made here, deterministically: issue 11's 7700 x 7700 RGBA PNG (a drawing, so it
compresses to a few MB), a 12 MP (4000 x 3000) progressive JPEG, progressive JPEGs with as many
pixels as ARV_MAX_IMAGE_PIXELS allows, in RGB without colour subsampling and in CMYK (the largest
coefficient buffers libjpeg keeps: 6 and 8 bytes a pixel), and an RGBA WebP at the WebP limit (a
quarter of it: see arv.mindar.limits). Each stage runs in a fresh process exactly as the product runs
it (tests/support/big_images.py: `check_image` as the API does, `thumbnail_jpeg` as the thumbnail job
does, `compile_targets` as the marker job does) and its peak resident memory (VmHWM, the
interpreter's own share included) is printed beside the 600 MB target. With --baseline-src, the same
stages also run on another checkout's `src` folder (e.g. `git worktree add /tmp/arv-before <commit>`
then `--baseline-src /tmp/arv-before/src`), printed as the "before" column.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import big_images  # noqa: E402

from arv.config import get_settings  # noqa: E402
from arv.mindar.limits import pixel_limit  # noqa: E402

TARGET_MB = 600


def _cases(folder: Path) -> dict[str, Path]:
    limit = get_settings().max_image_pixels
    width, height = big_images.max_pixels_size(limit)
    return {
        "7700 x 7700 RGBA PNG": big_images.big_rgba_png(folder / "poster.png"),
        "12 MP progressive JPEG": big_images.phone_progressive_jpeg(folder / "phone.jpg"),
        f"{width} x {height} progressive JPEG ({limit / 1e6:.0f} MP limit)": big_images.max_pixels_jpeg(
            folder / "limit.jpg", limit
        ),
        f"{width} x {height} progressive CMYK JPEG": big_images.max_pixels_cmyk_jpeg(
            folder / "cmyk.jpg", limit
        ),
        f"RGBA WebP at the WebP limit ({pixel_limit('WEBP', limit) / 1e6:.0f} MP)": (
            big_images.webp_at_its_limit(folder / "limit.webp", limit)
        ),
    }


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
