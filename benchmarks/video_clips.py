"""The clips the video benchmark transcodes and plays, made with ffmpeg once and kept for later runs.

Each clip is ffmpeg's moving test pattern (testsrc2) under temporal noise, so every frame differs from
the last the way a hand-held phone video's does and the encoder has real work, with a tone for sound.
Sources are encoded at a phone camera's bitrate (HEVC at 1080p30 about 10 Mbit/s, H.264 at 4K60 about
40 Mbit/s), which is what the size ratios of the renditions are measured against.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Inside the data folder's place in the checkout, which git ignores; clips survive between runs.
CLIP_DIR = REPO / ".arv" / "bench-videos"
# Making one clip takes minutes on two cores; more than this means ffmpeg is stuck.
MAKE_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Clip:
    """A source clip: its size, frame rate, length in seconds, codec (hevc or h264) and bitrate."""

    width: int
    height: int
    rate: int
    seconds: int
    codec: str
    kbps: int

    @property
    def name(self) -> str:
        return f"{self.codec}-{self.height}p{self.rate}-{self.seconds}s"

    @property
    def label(self) -> str:
        codec = "HEVC" if self.codec == "hevc" else "H.264"
        size = "4K" if self.height == 2160 else f"{self.height}p"
        return f"{self.seconds} s {size}{self.rate} {codec}"

    def path(self, folder: Path = CLIP_DIR) -> Path:
        return folder / f"{self.name}.mp4"


def _encoder(clip: Clip) -> list[str]:
    if clip.codec == "hevc":
        # hvc1, as iPhones tag it, so Safari and QuickTime would open the source as well.
        return ["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error"]
    return ["-c:v", "libx264", "-profile:v", "high"]


def make_clip(clip: Clip, folder: Path = CLIP_DIR) -> Path:
    """The clip's file, made first when it is not in `folder` yet."""
    out = clip.path(folder)
    if out.exists():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part.mp4")
    pattern = f"testsrc2=size={clip.width}x{clip.height}:rate={clip.rate},noise=alls=12:allf=t"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-t", str(clip.seconds), "-i", pattern,
         "-f", "lavfi", "-t", str(clip.seconds), "-i", "sine=frequency=440:sample_rate=48000",
         *_encoder(clip), "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-b:v", f"{clip.kbps}k", "-maxrate", f"{clip.kbps}k", "-bufsize", f"{clip.kbps * 2}k",
         "-c:a", "aac", "-b:a", "128k", "-shortest", str(partial)],
        check=True, timeout=MAKE_TIMEOUT_S,
    )  # fmt: skip
    partial.rename(out)
    return out
