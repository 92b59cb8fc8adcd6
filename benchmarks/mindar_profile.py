"""Times the matching half of the compiler (arv.mindar.matching) against MindAR 1.2.5's own, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/mindar_profile.py [--runs 3] [--skip-mindar] [--mindar-12mp]

The matching half is everything that makes a target's ``matchingData``: the keyframe pyramid, the
DoG detector, FREAK descriptors and the cluster trees. Both sides get the same grey pixels and each
runs in a fresh process, so the peak resident memory printed is that run's (with the interpreter's own
baseline: Python with numpy and OpenCV, Node.js with tfjs; ARV's baseline after imports is printed
too). ARV's time is the best of ``--runs``; MindAR's (Node.js, tfjs CPU backend, via
benchmarks/mindar_matching_node.mjs and the npm packages of tests/mindar_client) is one run. The last
column says whether the two outputs are identical, point for point and tree for tree.

Images: the two MindAR fixtures (674 x 372 and 800 x 800) and the 800 x 800 one enlarged to
1536 x 1536 and to 4000 x 3000 (12 MP) with a little noise so that the enlargement has fine detail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("ARV_TEST_MINDAR_FIXTURES", REPO.parent / "shared/fixtures/mindar"))
NODE_SCRIPT = REPO / "benchmarks" / "mindar_matching_node.mjs"
NODE_MODULES = REPO / "tests" / "mindar_client" / "node_modules"
# Grey levels (one standard deviation) of the noise added to the enlarged images.
ENLARGEMENT_NOISE = 4.0


def mindar_grey(path: Path) -> np.ndarray:
    """Pixels as stored (no orientation), grey = floor((R + G + B) / 3) as MindAR computes it."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint16)
    return (rgb.sum(axis=2) // 3).astype(np.uint8)


def enlarged(grey: np.ndarray, width: int, height: int, seed: int) -> np.ndarray:
    resized = Image.fromarray(grey).resize((width, height), Image.Resampling.BICUBIC)
    big = np.asarray(resized, dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0.0, ENLARGEMENT_NOISE, big.shape)
    return np.clip(np.rint(big + noise), 0, 255).astype(np.uint8)


def benchmark_images() -> list[tuple[str, np.ndarray]]:
    card = mindar_grey(FIXTURES / "card.png")
    pictarize = mindar_grey(FIXTURES / "pictarize.jpg")
    return [
        ("card.png", card),
        ("pictarize.jpg", pictarize),
        ("pictarize enlarged", enlarged(pictarize, 1536, 1536, seed=1)),
        ("pictarize enlarged (12 MP)", enlarged(pictarize, 4000, 3000, seed=2)),
    ]


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux's getrusage maximum survives exec, so a child would
    report at least its parent's size; the memory map's own high-water mark does not."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_arv(grey_path: Path, width: int, height: int, runs: int, out_path: Path) -> None:
    """Child process: time build_matching_keyframes; print {seconds, cpuSeconds, maxRssBytes,
    importRssBytes}, the times of the fastest run."""
    from arv.mindar.matching import build_matching_keyframes

    import_rss = peak_rss_bytes()
    grey = np.fromfile(grey_path, dtype=np.uint8).reshape(height, width)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        keyframes = build_matching_keyframes(grey)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu_started)
    peak_rss = peak_rss_bytes()
    out_path.write_text(json.dumps(keyframes))
    figures = {"seconds": best, "cpuSeconds": best_cpu, "maxRssBytes": peak_rss, "importRssBytes": import_rss}
    print(json.dumps(figures))


def run_arv(grey_path: Path, width: int, height: int, runs: int, out_path: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure-arv", str(grey_path), str(width), str(height), str(runs)]
    command.append(str(out_path))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_mindar(grey_path: Path, width: int, height: int, out_path: Path) -> dict[str, float]:
    command = ["node", str(NODE_SCRIPT), str(grey_path), str(width), str(height), str(out_path)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="ARV runs per image (best is printed)")
    parser.add_argument("--skip-mindar", action="store_true", help="do not run MindAR's side")
    parser.add_argument("--mindar-12mp", action="store_true", help="also run MindAR on 12 MP (minutes)")
    child = ("GREY", "W", "H", "RUNS", "OUT")
    parser.add_argument("--measure-arv", nargs=5, metavar=child, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_arv:
        grey_path, width, height, runs, out_path = args.measure_arv
        measure_arv(Path(grey_path), int(width), int(height), int(runs), Path(out_path))
        return

    mindar_available = not args.skip_mindar and NODE_MODULES.is_dir()
    if not args.skip_mindar and not mindar_available:
        print(f"MindAR side not run: {NODE_MODULES} is missing (make node-deps)")
    header = (
        f"{'image':<28}{'size':>11} | {'ARV s':>6}{'cpu':>6}{'MB':>5}{'(import)':>9} | "
        f"{'MindAR s':>9}{'cpu':>6}{'MB':>5} | {'faster':>7}{'(cpu)':>7}{'memory':>7} | identical"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as scratch:
        for name, grey in benchmark_images():
            height, width = grey.shape
            grey_path = Path(scratch) / "grey.raw"
            grey.tofile(grey_path)
            ours_path, theirs_path = Path(scratch) / "arv.json", Path(scratch) / "mindar.json"
            arv = run_arv(grey_path, width, height, args.runs, ours_path)
            row = (
                f"{name:<28}{f'{width}x{height}':>11} | {arv['seconds']:>6.2f}{arv['cpuSeconds']:>6.2f}"
                f"{arv['maxRssBytes'] / 2**20:>5.0f}{arv['importRssBytes'] / 2**20:>9.0f} | "
            )
            if mindar_available and (width * height < 10_000_000 or args.mindar_12mp):
                mindar = run_mindar(grey_path, width, height, theirs_path)
                identical = json.loads(ours_path.read_text()) == json.loads(theirs_path.read_text())
                faster = mindar["seconds"] / arv["seconds"]
                faster_cpu = mindar["cpuSeconds"] / arv["cpuSeconds"]
                memory = arv["maxRssBytes"] / mindar["maxRssBytes"]
                mindar_mb = mindar["maxRssBytes"] / 2**20
                row += (
                    f"{mindar['seconds']:>9.2f}{mindar['cpuSeconds']:>6.1f}{mindar_mb:>5.0f} | "
                    f"{faster:>6.1f}x{faster_cpu:>6.1f}x{memory:>7.2f} | {'yes' if identical else 'no'}"
                )
            else:
                row += f"{'-':>9}{'-':>6}{'-':>5} | {'-':>7}{'-':>7}{'-':>7} | -"
            print(row, flush=True)
    print("s: wall time; cpu: processor time of all threads (less sensitive to other load on the machine);")
    print("MB: peak resident memory of the whole process; (import): ARV's after importing numpy, OpenCV and")
    print("arv.mindar; memory: ARV's peak as a fraction of MindAR's. Reference, MindAR's whole compile")
    print("(matching and tracking) on an idle 2-core machine: 3.4 s for 674x372, 7.4 s for 800x800,")
    print("22.4 s and 0.67 GB for 1536x1536.")


if __name__ == "__main__":
    main()
