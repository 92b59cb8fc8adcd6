"""Fake phone cameras for the browser: .y4m videos of a printed photo in perspective, made by ffmpeg."""

from __future__ import annotations

import io
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

WIDTH, HEIGHT = 640, 480
FPS = 15


def _table(seed: int) -> np.ndarray:
    """A plain, softly textured surface for the print to lie on (few features of its own)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 6, (HEIGHT // 16, WIDTH // 16, 1))
    surface = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(np.array([150.0, 140.0, 125.0]) + surface, 0, 255).astype(np.uint8)


def _print_corners(t: float, width: int, height: int) -> np.ndarray:
    """Where the print's corners land at time t, seen by a pinhole camera with MindAR's assumed 45 degree
    vertical field of view: the print is tilted back about 30 degrees, turned a little, and sways slowly."""
    focal = (HEIGHT / 2) / math.tan(math.radians(45.0) / 2)
    scale = 300.0 / max(width, height)
    w, h = width * scale, height * scale
    # The print's corners in its own plane (pixels), centred on its middle.
    plane = np.array([[-w / 2, -h / 2, 0.0], [w / 2, -h / 2, 0.0], [w / 2, h / 2, 0.0], [-w / 2, h / 2, 0.0]])
    tilt = math.radians(-30.0 + math.sin(t * 0.8) * 4.0)
    roll = math.radians(8.0 + math.sin(t * 0.7) * 3.0)
    tilt_x = np.array([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    roll_z = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    # At distance `focal` the print's face-on size in the frame is its size in pixels.
    centre = np.array([math.sin(t * 1.3) * 12.0, math.cos(t * 0.9) * 6.0, focal])
    points = plane @ (tilt_x @ roll_z).T + centre
    projected = points[:, :2] / points[:, 2:3] * focal + [WIDTH / 2, HEIGHT / 2]
    return projected.astype(np.float32)


def printed_photo_frames(
    photo: bytes, *, seconds: float, away_s: float = 0.0, seed: int = 3
) -> list[np.ndarray]:
    """RGB frames of `photo` (as a person sees it, EXIF applied) printed and held in front of the camera
    for `seconds`, then `away_s` seconds of the table without it."""
    image = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(photo))).convert("RGB"))
    height, width = image.shape[:2]
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    table = _table(seed)
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(round(seconds * FPS)):
        corners = _print_corners(index / FPS, width, height)
        warp = cv2.getPerspectiveTransform(source, corners)
        frame = cv2.warpPerspective(
            image,
            warp,
            (WIDTH, HEIGHT),
            flags=cv2.INTER_AREA,
            borderMode=cv2.BORDER_TRANSPARENT,
            dst=table.copy(),
        )
        noise = rng.normal(0, 2.0, frame.shape)
        frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    for _ in range(round(away_s * FPS)):
        frames.append(np.clip(table + rng.normal(0, 2.0, table.shape), 0, 255).astype(np.uint8))
    return frames


def write_y4m(frames: list[np.ndarray], path: Path) -> Path:
    """Encode RGB frames as a .y4m (yuv420p) that Chromium's fake camera plays at FPS and loops."""
    command = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}",
        "-r", str(FPS), "-i", "pipe:0", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True, timeout=120)
    return path


def camera_showing(photo: bytes, path: Path, *, seconds: float = 4.0, away_s: float = 0.0) -> Path:
    """A camera video of `photo` printed and held in perspective (then taken away for `away_s`);
    Chromium's fake camera loops it."""
    return write_y4m(printed_photo_frames(photo, seconds=seconds, away_s=away_s), path)


def playable_video(
    path: Path, *, seconds: float = 3.0, container: str = "webm", picture: str = "testsrc"
) -> bytes:
    """A small real video for the page to play: WebM (VP8) or MP4 (H.264) of an ffmpeg source,
    a moving test pattern by default, `color=c=magenta` for one flat colour."""
    webm = ["-c:v", "libvpx", "-b:v", "300k"]
    codec = webm if container == "webm" else ["-c:v", "libx264", "-preset", "ultrafast"]
    # A source's options follow its name after "=", and each other after ":".
    pattern = f"{picture}{':' if '=' in picture else '='}size=320x240:rate=15:duration={seconds}"
    command = [
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", pattern,
        *codec, "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=120)
    return path.read_bytes()
