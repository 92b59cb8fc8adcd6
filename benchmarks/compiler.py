"""Times ARV's compile_targets against MindAR 1.2.5's own compiler on the same photos, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/compiler.py [--views] [--arv-runs 3] [--mindar-runs 1] [--skip-mindar-12mp]

ARV runs as the product does, at its default working resolution (photos larger than
arv.mindar.DEFAULT_WORKING_SIDE on their shortest side are reduced first); MindAR compiles the photo at
full size, as it always does. With --views, both .mind files of each photo are also searched in
synthetic camera views (tests/support/camera_views.py) by MindAR's own detector and matcher, to show
what the working resolution costs in detection.

Every compile runs in a fresh process so that the peak resident memory printed is that compile's
(plus the interpreter's own baseline: Python with numpy and OpenCV, Node.js with tfjs). Times are the
compile alone, start-up excluded on both sides: ARV from the image file to the .mind bytes, MindAR
from the PNG file to the .mind bytes (Node.js decodes PNG only, so the photo is converted first,
outside the timing). MindAR needs the npm packages of tests/mindar_client (installed on first use).

The photos are made here, deterministically, from photos bundled with scikit-image: each is enlarged
to the benchmark size, then given fine detail at full resolution (high-passed gravel, brick and grass
textures, also bundled) and sensor noise, and saved as a JPEG as a phone would.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The MindAR side lives with the tests (tests/support/mindar_client.py); run as a script, the
# repository root is not on the import path by itself.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.camera_views import (  # noqa: E402
    located_in,
    views_of_target,
    views_without_target,
)
from tests.support.mindar_client import (  # noqa: E402
    SearchRun,
    compile_with_mindar,
    locate_runs,
    node_executable,
    picture_as_seen,
)

SAMPLE_PHOTOS = Path(str(files("skimage") / "data"))
FIXTURES = Path(os.environ.get("ARV_TEST_MINDAR_FIXTURES", REPO.parent / "shared/fixtures/mindar"))
# Fine detail laid over an enlarged photo, with its strength in grey levels (one standard deviation).
DETAIL_TEXTURES = (("gravel.png", 10.0), ("brick.png", 5.0), ("grass.png", 6.0))
SENSOR_NOISE = 2.5
JPEG_QUALITY = 92
# Memory is reported in decimal units: 1 GB = 10^9 bytes.
GB = 10**9


@dataclass(frozen=True)
class BenchmarkPhoto:
    label: str
    source: str
    size: tuple[int, int] | None


PHOTOS = (
    BenchmarkPhoto("pictarize 800 x 800 (MindAR's example)", "fixture:pictarize.jpg", None),
    BenchmarkPhoto("astronaut 1536 x 1536", "astronaut.png", (1536, 1536)),
    BenchmarkPhoto("coffee 4000 x 3000 (12 MP)", "coffee.png", (4000, 3000)),
)


@dataclass(frozen=True)
class CompileRun:
    seconds: float
    peak_rss_bytes: int
    mind: bytes


def photo_with_detail(base: np.ndarray, size: tuple[int, int], seed: int) -> np.ndarray:
    """`base` (RGB) cropped to the aspect of `size` (width, height), enlarged to it, with full-resolution
    texture detail scaled by local brightness and Gaussian sensor noise."""
    width, height = size
    base_height, base_width = base.shape[:2]
    if base_width / base_height > width / height:
        crop = int(base_height * width / height)
        base = base[:, (base_width - crop) // 2 : (base_width - crop) // 2 + crop]
    else:
        crop = int(base_width * height / width)
        base = base[(base_height - crop) // 2 : (base_height - crop) // 2 + crop]
    photo = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    detail = np.zeros((height, width), np.float32)
    for name, strength in DETAIL_TEXTURES:
        texture = np.asarray(Image.open(SAMPLE_PHOTOS / name).convert("L"), np.float32)
        texture -= cv2.GaussianBlur(texture, (0, 0), 3)
        reps = (height // texture.shape[0] + 1, width // texture.shape[1] + 1)
        detail += strength * np.tile(texture / texture.std(), reps)[:height, :width]
    photo += detail[..., None] * (photo / 255.0)
    photo += SENSOR_NOISE * np.random.default_rng(seed).standard_normal(photo.shape, dtype=np.float32)
    return np.clip(photo, 0, 255).astype(np.uint8)


def prepare_photo(photo: BenchmarkPhoto, folder: Path, seed: int) -> Path:
    if photo.source.startswith("fixture:"):
        return FIXTURES / photo.source.removeprefix("fixture:")
    base = np.asarray(Image.open(SAMPLE_PHOTOS / photo.source).convert("RGB"))
    assert photo.size is not None
    path = folder / f"{Path(photo.source).stem}-{photo.size[0]}x{photo.size[1]}.jpg"
    Image.fromarray(photo_with_detail(base, photo.size, seed)).save(path, quality=JPEG_QUALITY)
    return path


def compile_with_arv_here(image: Path, out: Path) -> None:
    """The child process of one ARV run: compile, write the .mind, print time and peak memory."""
    from arv.mindar import compile_targets

    started = time.perf_counter()
    compiled = compile_targets([image])
    seconds = time.perf_counter() - started
    out.write_bytes(compiled.data)
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak_rss_bytes()}))


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started. Linux's VmHWM belongs to the address space
    exec made; getrusage's ru_maxrss is carried across exec, so a child forked from a large parent
    would report the parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_arv(image: Path) -> CompileRun:
    with tempfile.TemporaryDirectory(prefix="arv-compile-") as scratch:
        out = Path(scratch) / "target.mind"
        completed = subprocess.run(
            [sys.executable, __file__, "--arv-child", str(image), "--arv-child-out", str(out)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        report = json.loads(completed.stdout.strip().splitlines()[-1])
        return CompileRun(report["seconds"], report["peak_rss_bytes"], out.read_bytes())


def run_mindar(image: Path) -> CompileRun:
    compiled = compile_with_mindar([image], timeout=3600)
    return CompileRun(compiled.seconds, compiled.peak_rss_bytes, compiled.data)


def node_version() -> str:
    return subprocess.run([node_executable(), "--version"], capture_output=True, text=True).stdout.strip()


def summarise(runs: list[CompileRun]) -> CompileRun:
    """Median time and the largest peak over repeated runs (the .mind of the first: all are equal)."""
    return CompileRun(
        statistics.median(r.seconds for r in runs), max(r.peak_rss_bytes for r in runs), runs[0].mind
    )


def located_views(image: Path, minds: list[bytes], seed: int) -> list[str]:
    """How many views of the photo each .mind is located in by MindAR's own detector and matcher, and
    in how many views without it a target is reported, as "located/views, false positives"."""
    target = picture_as_seen(image)
    views = views_of_target(target, seed=seed)
    empty = views_without_target([])
    frames = [v.frame for v in views + empty]
    searches = locate_runs([SearchRun(mind, frames) for mind in minds])
    summaries = []
    for found in searches:
        located = len(
            [
                view
                for view, detection in zip(views, found, strict=False)
                if detection is not None and located_in(view, detection.corners)
            ]
        )
        false_positives = len([detection for detection in found[len(views) :] if detection is not None])
        summaries.append(f"{located}/{len(views)}, {false_positives} fp")
    return summaries


def megabytes(n: int) -> str:
    return f"{n / 10**6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arv-runs", type=int, default=3, help="ARV compiles per photo (median time)")
    parser.add_argument("--mindar-runs", type=int, default=1, help="MindAR compiles per photo")
    parser.add_argument("--skip-mindar-12mp", action="store_true", help="MindAR takes minutes on 12 MP")
    parser.add_argument(
        "--views",
        action="store_true",
        help="also search both .mind files in synthetic camera views with MindAR's own matcher",
    )
    parser.add_argument("--arv-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arv-child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arv_child:
        compile_with_arv_here(args.arv_child, args.arv_child_out)
        return

    from arv.mindar import DEFAULT_WORKING_SIDE

    print(f"{os.cpu_count()} cores; each compile in its own process; time = median, memory = peak RSS")
    print(f"ARV working side {DEFAULT_WORKING_SIDE} px; MindAR 1.2.5 on Node.js {node_version()}, tfjs CPU")
    header = f"{'photo':40} {'ARV time':>9} {'ARV peak':>9} {'MindAR time':>12} {'MindAR peak':>12}"
    print(header + f" {'speed-up':>9} {'memory':>8}")
    results: dict[str, tuple[CompileRun, CompileRun | None]] = {}
    with tempfile.TemporaryDirectory(prefix="arv-compiler-benchmark-") as scratch:
        for seed, photo in enumerate(PHOTOS):
            image = prepare_photo(photo, Path(scratch), seed)
            arv = summarise([run_arv(image) for _ in range(args.arv_runs)])
            mindar = None
            if not (args.skip_mindar_12mp and photo.size == (4000, 3000)):
                mindar = summarise([run_mindar(image) for _ in range(args.mindar_runs)])
            results[photo.label] = (arv, mindar)
            line = f"{photo.label:40} {arv.seconds:8.2f}s {megabytes(arv.peak_rss_bytes):>9}"
            if mindar is None:
                print(line + f" {'not run':>12} {'':>12}")
                continue
            speed_up = mindar.seconds / arv.seconds
            memory_share = arv.peak_rss_bytes / mindar.peak_rss_bytes
            print(
                line + f" {mindar.seconds:11.2f}s {megabytes(mindar.peak_rss_bytes):>12}"
                f" {speed_up:8.1f}x {memory_share:7.2f}x"
            )
            if args.views:
                arv_views, mindar_views = located_views(image, [arv.mind, mindar.mind], seed)
                print(f"{'':40} views located (MindAR's matcher): ARV {arv_views}; MindAR {mindar_views}")

    print("\ngoals (issue 2):")
    arv, mindar = results[PHOTOS[1].label]
    if mindar is not None:
        speed_up = mindar.seconds / arv.seconds
        share = arv.peak_rss_bytes / mindar.peak_rss_bytes
        print(f"  1536 x 1536 at least 20x faster than MindAR: {speed_up:.1f}x -> {verdict(speed_up >= 20)}")
        print(f"  1536 x 1536 at most 1/4 of MindAR's memory: {share:.2f} -> {verdict(share <= 0.25)}")
    peak_12mp = results[PHOTOS[2].label][0].peak_rss_bytes
    print(f"  12 MP within 1.5 GB: {peak_12mp / GB:.2f} GB -> {verdict(peak_12mp <= 1.5 * GB)}")


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
