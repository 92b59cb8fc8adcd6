"""Test images made on the fly: a detailed photo-like picture, and the broken files uploads must refuse."""

from __future__ import annotations

import functools
import io
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(width: int = 640, height: int = 480, seed: int = 1) -> Image.Image:
    """A picture with detail everywhere (shapes, edges, texture), like a photo a shop would print."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(120):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, width // 4)), y0 + int(rng.integers(10, height // 4))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=int(rng.integers(1, 5)))
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 6)))
    return image.filter(ImageFilter.SMOOTH)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def photo_jpeg(width: int = 640, height: int = 480, seed: int = 1) -> bytes:
    return encode(photo(width, height, seed), "JPEG", quality=90)


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (900 MP by default): a decompression bomb."""
    raw = zlib.compress(b"\x00" * (width // 8 + 1) * 16, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@functools.cache
def mp4_bytes(seed: int = 0) -> bytes:
    """A real tiny MP4 (H.264, 64 x 48, 1 s at 10 fps, no sound) that ffprobe reads, so uploads accept it;
    each `seed` gives a different file (its test pattern starts `seed` frames later). Made once a run."""
    with tempfile.TemporaryDirectory(prefix="arv-test-mp4-") as folder:
        path = Path(folder) / "clip.mp4"
        source = f"testsrc=size=64x48:rate=10:duration={1 + seed / 10:g}"
        command = [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-ss", f"{seed / 10:g}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
        ]  # fmt: skip
        subprocess.run(command, check=True, timeout=60)
        return path.read_bytes()
