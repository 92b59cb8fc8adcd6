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
from arv.mindar.images import load_target_image
from arv.mindar.matching import build_matching_keyframes
from arv.mindar.mindfile import encode_mind
from arv.mindar.tracking import build_tracking_levels

SAMPLE_PHOTOS = Path(str(files("skimage") / "data"))
PHOTOS = {"1536 x 1536": ("astronaut.png", (1536, 1536)), "12 MP": ("coffee.png", (4032, 3024))}


def photo(name: str, size: tuple[int, int], format: str) -> bytes:
    picture = Image.open(SAMPLE_PHOTOS / name).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    pixels = np.asarray(picture).astype(np.float32)
    pixels += np.random.default_rng(0).normal(0, 3.0, size=pixels.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format, quality=90)
    return buffer.getvalue()


def median_ms(
    action: Callable[[], object], runs: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    times = []
    for _ in range(runs):
        start = clock()
        action()
        times.append(clock() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(f"median of {runs} runs, ms, wall time / CPU time (CPU is steadier on a busy machine)")
    print(f"working side {DEFAULT_WORKING_SIDE} px")
    columns = ("load", "reduce", "match", "track", "encode", "ours*", "whole")
    print(f"{'photo':17} " + " ".join(f"{column:>11}" for column in columns))
    for label, (name, size) in PHOTOS.items():
        for format in ("JPEG", "PNG"):
            data = photo(name, size, format)
            grey = load_target_image(data, working_side=DEFAULT_WORKING_SIDE).grey
            target = working_resolution(grey, DEFAULT_WORKING_SIDE)
            keyframes = build_matching_keyframes(target)
            levels = build_tracking_levels(target)
            mind = {
                "targetImage": {"width": target.shape[1], "height": target.shape[0]},
                "trackingData": [level.to_mind() for level in levels],
                "matchingData": keyframes,
            }
            stages: dict[str, Callable[[], object]] = {
                "load": lambda: load_target_image(data, working_side=DEFAULT_WORKING_SIDE),  # noqa: B023
                "reduce": lambda: working_resolution(grey, DEFAULT_WORKING_SIDE),  # noqa: B023
                "match": lambda: build_matching_keyframes(target),  # noqa: B023
                "track": lambda: build_tracking_levels(target),  # noqa: B023
                "encode": lambda: encode_mind([mind]),  # noqa: B023
                "whole": lambda: compile_targets([data]),  # noqa: B023
            }
            cells: list[tuple[float, float]] = []
            for column in columns:
                if column == "ours*":
                    parts = [cells[columns.index(stage)] for stage in ("load", "reduce", "track", "encode")]
                    cells.append((sum(wall for wall, _ in parts), sum(cpu for _, cpu in parts)))
                    continue
                action = stages[column]
                cells.append((median_ms(action, runs), median_ms(action, runs, time.process_time)))
            print(f"{label + ' ' + format:17} " + " ".join(f"{wall:5.0f}/{cpu:5.0f}" for wall, cpu in cells))
    print("* ours: everything but the matching data (loading, reduction, tracking, encoding)")


if __name__ == "__main__":
    main()
