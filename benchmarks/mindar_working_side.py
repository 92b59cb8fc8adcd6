"""How far a 12 MP photo can be reduced before compiling without MindAR finding it in fewer views.

Each target picture (the two MindAR fixtures and three scikit-image photos) is enlarged to a 12 MP
phone-style photo with sensor grain, saved as JPEG, and compiled by arv.mindar at several working
resolutions (shortest side in px; "full" = no reduction). MindAR 1.2.5's own detector and matcher
(Node.js, tests/support/mindar_client.py) then search the synthetic camera views of
tests/support/camera_views.py, rendered from the 12 MP photo. Printed: per working side, the views
where the target was located (corners within 10% of the diagonal), misplaced detections, false
positives in views without the target, and compile time and peak memory (a child process each).

Run: .venv/bin/python -m benchmarks.mindar_working_side
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image
from tests.support.camera_views import corners_within, views_of_target, views_without_target
from tests.support.mindar_client import SearchRun, locate_runs, picture_as_seen

FIXTURES = Path(
    os.environ.get("ARV_TEST_MINDAR_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures/mindar")
)
SAMPLE_PHOTOS = Path(str(files("skimage") / "data"))
PICTURES = {
    "card": FIXTURES / "card.png",
    "pictarize": FIXTURES / "pictarize.jpg",
    "astronaut": SAMPLE_PHOTOS / "astronaut.png",
    "chelsea": SAMPLE_PHOTOS / "chelsea.png",
    "coffee": SAMPLE_PHOTOS / "coffee.png",
}
OTHER_PICTURES = [SAMPLE_PHOTOS / "hubble_deep_field.jpg"]
WORKING_SIDES = [512, 768, 1024, 1536, 0]  # 0: no reduction
PHOTO_PIXELS = 12_000_000

# Compiles in a child process so its peak memory is its own.
_COMPILE_CHILD = """
import json, sys, time
from arv.mindar import compile_targets
path, side, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
compiled = compile_targets([path], working_side=side or 10**9)
seconds = time.perf_counter() - start
open(out, "wb").write(compiled.data)
report = compiled.reports[0]
# VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over from fork.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024,
                  "size": [report.width, report.height], "verdict": report.verdict}))
"""


def twelve_megapixel_photo(picture: np.ndarray, seed: int) -> bytes:
    """The picture enlarged to about 12 MP with a little sensor grain, as a phone JPEG."""
    height, width = picture.shape[:2]
    factor = (PHOTO_PIXELS / (width * height)) ** 0.5
    size = (round(width * factor), round(height * factor))
    enlarged = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS)).astype(np.float32)
    enlarged += np.random.default_rng(seed).normal(0, 3.0, size=enlarged.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(enlarged, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def compile_in_child(photo: Path, side: int, out: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", _COMPILE_CHILD, str(photo), str(side), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    empty_views = views_without_target([picture_as_seen(path) for path in OTHER_PICTURES])
    with tempfile.TemporaryDirectory(prefix="working-side-") as scratch:
        folder = Path(scratch)
        photos, views = {}, {}
        for index, (name, path) in enumerate(PICTURES.items()):
            photo = folder / f"{name}.jpg"
            photo.write_bytes(twelve_megapixel_photo(picture_as_seen(path), seed=index))
            photos[name] = photo
            views[name] = views_of_target(picture_as_seen(photo), seed=index)
        runs, compiles = [], {}
        for side in WORKING_SIDES:
            for name, photo in photos.items():
                out = folder / f"{name}-{side}.mind"
                compiles[side, name] = compile_in_child(photo, side, out)
                frames = [view.frame for view in views[name] + empty_views]
                runs.append(SearchRun(out.read_bytes(), frames))
        results = iter(locate_runs(runs))

    print("working side  located  misplaced  false+   compile s (max)  peak MB (max)")
    for side in WORKING_SIDES:
        located = misplaced = false_positives = 0
        for name in PICTURES:
            found = next(results)
            own, empty = found[: len(views[name])], found[len(views[name]) :]
            for view, detection in zip(views[name], own, strict=True):
                if detection is not None and view.target_corners is not None:
                    if corners_within(detection.corners, view.target_corners):
                        located += 1
                    else:
                        misplaced += 1
            false_positives += sum(detection is not None for detection in empty)
        seconds = [compiles[side, name]["seconds"] for name in PICTURES]
        peaks = [compiles[side, name]["peak_mb"] for name in PICTURES]
        total = sum(len(v) for v in views.values())
        label = str(side) if side else "full"
        print(
            f"{label:>12}  {located:3}/{total}  {misplaced:9}  {false_positives:6}   "
            f"{np.mean(seconds):5.2f} ({max(seconds):.2f})      {np.mean(peaks):5.0f} ({max(peaks):.0f})"
        )


if __name__ == "__main__":
    main()
