"""Runs MindAR 1.2.5's own detector, matcher and compiler (Node.js, tfjs CPU) from Python tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

CLIENT_DIR = Path(__file__).resolve().parents[1] / "mindar_client"
# npm writes this after a successful install; it lists exactly what node_modules holds.
INSTALLED_LOCK = CLIENT_DIR / "node_modules" / ".package-lock.json"

MindSource = bytes | str | Path
FrameSource = np.ndarray | str | Path
ImageSource = np.ndarray | str | Path


@dataclass(frozen=True)
class Detection:
    """What MindAR found in one frame: the target's index in the .mind, its four corners (top-left,
    top-right, bottom-right, bottom-left) in frame pixels from MindAR's pose, the crop position (0..8,
    4 the centre) whose feature points matched, and how many matches the pose rests on."""

    target_index: int
    corners: np.ndarray
    crop_index: int
    matches: int
    keyframe_index: int


@dataclass(frozen=True)
class MindarCompile:
    """A .mind made by MindAR's compiler, the compile's wall time inside Node.js (decode to encoded
    bytes, start-up excluded), the Node.js process's peak resident memory, and the wall time of the
    whole Node.js process (start to exit, as a command-line compile costs)."""

    data: bytes
    seconds: float
    peak_rss_bytes: int
    process_seconds: float


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is not installed; MindAR's client runs in Node.js 20")
    return node


def ensure_node_modules() -> None:
    """Install the pinned npm packages (npm ci) unless node_modules already matches the lock file."""
    lock = CLIENT_DIR / "package-lock.json"
    if INSTALLED_LOCK.exists() and INSTALLED_LOCK.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; it installs MindAR for the real-client tests")
    subprocess.run([npm, "ci", "--prefix", str(CLIENT_DIR)], check=True, capture_output=True)


def _start_script(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [node_executable(), str(CLIENT_DIR / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=CLIENT_DIR,
    )


def _finish_script(child: subprocess.Popen[str], script: str, timeout: float) -> str:
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"{script} failed ({child.returncode}): {stderr.strip()[-2000:]}")
    # tfjs prints its banner on stderr; the script's result is the last line of stdout.
    return stdout.strip().splitlines()[-1]


def _write_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(np.ascontiguousarray(image)).save(path, compress_level=1)


def picture_as_seen(path: str | Path) -> np.ndarray:
    """An image file as a person sees it (EXIF orientation applied, as browsers draw it), in RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _stage_mind(mind: MindSource, path: Path) -> str:
    if isinstance(mind, bytes):
        path.write_bytes(mind)
        return str(path)
    return str(Path(mind).resolve())


def _frame_key(frame: FrameSource) -> object:
    return id(frame) if isinstance(frame, np.ndarray) else str(Path(frame).resolve())


@dataclass(frozen=True)
class SearchRun:
    """One .mind searched for in frames, each frame through up to `crop_positions` detector crops."""

    mind: MindSource
    frames: Sequence[FrameSource]
    crop_positions: int = 9


def locate_runs(
    runs: Sequence[SearchRun],
    *,
    processes: int = 2,
    timeout: float = 900,
) -> list[list[Detection | None]]:
    """For each run, MindAR's search result in each of its frames (None where it found nothing).

    Frames are RGB arrays or PNG paths, searched as MindAR's controller searches a still camera image:
    up to the run's `crop_positions` of its nine detector crops, centre first. A frame's feature points are
    detected once per Node.js process and reused by every .mind that searches it; the distinct frames
    are dealt out to `processes` Node.js processes that run side by side.
    """
    with tempfile.TemporaryDirectory(prefix="mindar-locate-") as scratch:
        folder = Path(scratch)
        frame_paths: dict[object, str] = {}
        for run_frames in (run.frames for run in runs):
            for frame in run_frames:
                key = _frame_key(frame)
                if key in frame_paths:
                    continue
                if isinstance(frame, np.ndarray):
                    path = folder / f"frame-{len(frame_paths):04d}.png"
                    _write_png(frame, path)
                    frame_paths[key] = str(path)
                else:
                    frame_paths[key] = str(key)
        worker_of = {path: i % processes for i, path in enumerate(frame_paths.values())}
        mind_paths = [_stage_mind(run.mind, folder / f"run-{i}.mind") for i, run in enumerate(runs)]
        run_frame_paths = [[frame_paths[_frame_key(f)] for f in run.frames] for run in runs]

        ensure_node_modules()
        children = []
        for worker in range(processes):
            job = {
                "runs": [
                    {
                        "mind": mind_path,
                        "frames": [p for p in paths if worker_of[p] == worker],
                        "cropPositions": run.crop_positions,
                    }
                    for run, mind_path, paths in zip(runs, mind_paths, run_frame_paths, strict=True)
                ],
            }
            job_path = folder / f"job-{worker}.json"
            job_path.write_text(json.dumps(job))
            children.append(_start_script("locate.mjs", str(job_path)))
        answers = [_finish_script(child, "locate.mjs", timeout) for child in children]

    found_by_worker = [iter(run["frames"]) for answer in answers for run in json.loads(answer)["runs"]]
    results = []
    for index, paths in enumerate(run_frame_paths):
        # Each worker answers its own frames of a run in order; interleave them back into run order.
        per_worker = [found_by_worker[worker * len(runs) + index] for worker in range(processes)]
        results.append([_detection(next(per_worker[worker_of[p]])) for p in paths])
    return results


def locate(
    mind: MindSource, frames: Sequence[FrameSource], *, crop_positions: int = 9
) -> list[Detection | None]:
    """MindAR's search result for one .mind in each frame (None where it found nothing)."""
    return locate_runs([SearchRun(mind, frames, crop_positions)])[0]


def _detection(found: dict) -> Detection | None:
    if found["targetIndex"] < 0:
        return None
    return Detection(
        target_index=found["targetIndex"],
        corners=np.array(found["corners"], dtype=float),
        crop_index=found["cropIndex"],
        matches=found["matches"],
        keyframe_index=found["keyframeIndex"],
    )


# MindAR's .mind of each list of pictures compiled in this run, by the pictures' pixels.
_compiled_in_this_run: dict[str, bytes] = {}

# MindAR's .mind files for the pictures the suite hands its compiler, committed so that `make test`
# does not spend 10-60 s of Node.js on each; scripts/mindar-compiled.py makes them again.
COMPILED_DIR = CLIENT_DIR / "compiled"
# What decides the bytes MindAR's compiler writes besides the pixels: the pinned packages and the
# scripts that decode the PNG and run the compiler. A change to any of them changes every key.
COMPILER_FILES = ("package-lock.json", "compile.mjs", "png-image.mjs", "tf-cpu.mjs")


def compiled_key(pictures: Sequence[np.ndarray]) -> str:
    """The SHA-256 of what makes a .mind: the compiler's files, then each picture's shape, type and
    pixels exactly as they are handed over, in order."""
    digest = hashlib.sha256()
    for name in COMPILER_FILES:
        digest.update(name.encode() + b"\0" + (CLIENT_DIR / name).read_bytes())
    for picture in pictures:
        digest.update(f"{picture.shape}{picture.dtype}".encode() + np.ascontiguousarray(picture).tobytes())
    return digest.hexdigest()


def compiled_path(pictures: Sequence[np.ndarray]) -> Path:
    return COMPILED_DIR / f"{compiled_key(pictures)}.mind"


def mind_compiled_by_mindar(images: Sequence[ImageSource]) -> bytes:
    """The .mind `compile_with_mindar` makes of `images`, without compiling when it can: MindAR's
    compiler gives the same bytes for the same pictures (scripts/mindar-compiled.py --check compiles
    again and compares), and one compile is 10-60 s of Node.js. The committed file for exactly these
    pixels and this compiler is read if there is one, else MindAR compiles them, once a run. (Its
    timings are not kept: a benchmark calls `compile_with_mindar` itself.)"""
    pictures = [_pixels(image) for image in images]
    key = compiled_key(pictures)
    if key not in _compiled_in_this_run:
        committed = COMPILED_DIR / f"{key}.mind"
        _compiled_in_this_run[key] = (
            committed.read_bytes() if committed.is_file() else compile_with_mindar(pictures).data
        )
    return _compiled_in_this_run[key]


def _pixels(image: ImageSource) -> np.ndarray:
    return image if isinstance(image, np.ndarray) else picture_as_seen(image)


def compile_with_mindar(images: Sequence[ImageSource], *, timeout: float = 1800) -> MindarCompile:
    """One .mind with one target per image, in order, from MindAR's own compiler.

    Paths are read as a person sees them (EXIF orientation applied) and handed over as PNG, since the
    Node.js side decodes PNG only; arrays are RGB or grey pixels.
    """
    with tempfile.TemporaryDirectory(prefix="mindar-compile-") as scratch:
        folder = Path(scratch)
        png_paths = []
        for index, image in enumerate(images):
            pixels = _pixels(image)
            path = folder / f"target-{index}.png"
            _write_png(pixels, path)
            png_paths.append(str(path))
        out = folder / "targets.mind"
        ensure_node_modules()
        started = time.perf_counter()
        child = _start_script("compile.mjs", str(out), *png_paths)
        report = json.loads(_finish_script(child, "compile.mjs", timeout))
        process_seconds = time.perf_counter() - started
        return MindarCompile(
            out.read_bytes(), float(report["seconds"]), int(report["peakRssBytes"]), process_seconds
        )
