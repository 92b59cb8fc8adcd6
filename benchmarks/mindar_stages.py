"""Where a compile's time goes: loading, reduction, matching data, tracking data and encoding, per photo.

Photos: scikit-image's astronaut enlarged to 1536 x 1536 and coffee enlarged to 12 MP (4032 x 3024),
both with a little sensor grain, saved as JPEG (quality 90) and as PNG. Each stage is timed on its
own, the median of several runs in this process (warm caches), beside the whole compile_targets call.

Run: .venv/bin/python -m benchmarks.mindar_stages [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

from arv.mindar import compile_targets
from arv.mindar.compiler import DEFAULT_WORKING_SIDE, working_resolution
from arv.mindar.images import load_grey_image
from arv.mindar.matching import build_matching_keyframes
from arv.mindar.mindfile import encode_mind
from arv.mindar.tracking import build_tracking_levels

SAMPLE_PHOTOS = Path(str(files("skimage") / "data"))
PHOTOS = {"1536 x 1536": ("astronaut.png", (1536, 1536)), "12 MP": ("coffee.png", (4032, 3024))}


def photo(name: str, size: tuple[int, int], format: str) -> bytes:
    picture = Image.open(SAMPLE_PHOTOS / name).convert("RGB").resize(size, Image.LANCZOS)
    pixels = np.asarray(picture).astype(np.float32)
    pixels += np.random.default_rng(0).normal(0, 3.0, size=pixels.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format, quality=90)
    return buffer.getvalue()


def median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(f"median of {runs} runs, ms; working side {DEFAULT_WORKING_SIDE} px")
    print(
        f"{'photo':22} {'load':>6} {'reduce':>6} {'match':>6} {'track':>6} {'encode':>6} "
        f"{'ours*':>6} {'whole':>6}"
    )
    for label, (name, size) in PHOTOS.items():
        for format in ("JPEG", "PNG"):
            data = photo(name, size, format)
            grey = load_grey_image(data, working_side=DEFAULT_WORKING_SIDE)
            target = working_resolution(grey, DEFAULT_WORKING_SIDE)
            keyframes = build_matching_keyframes(target)
            levels = build_tracking_levels(target)
            mind = {
                "targetImage": {"width": target.shape[1], "height": target.shape[0]},
                "trackingData": [level.to_mind() for level in levels],
                "matchingData": keyframes,
            }
            load = median_ms(lambda: load_grey_image(data, working_side=DEFAULT_WORKING_SIDE), runs)  # noqa: B023
            reduce = median_ms(lambda: working_resolution(grey, DEFAULT_WORKING_SIDE), runs)  # noqa: B023
            match = median_ms(lambda: build_matching_keyframes(target), runs)  # noqa: B023
            track = median_ms(lambda: build_tracking_levels(target), runs)  # noqa: B023
            encode = median_ms(lambda: encode_mind([mind]), runs)  # noqa: B023
            whole = median_ms(lambda: compile_targets([data]), runs)  # noqa: B023
            ours = load + reduce + track + encode
            stages = (load, reduce, match, track, encode, ours, whole)
            print(f"{label + ' ' + format:22} " + " ".join(f"{ms:6.0f}" for ms in stages))
    print("* ours: everything but the matching data (loading, reduction, tracking, encoding)")


if __name__ == "__main__":
    main()
