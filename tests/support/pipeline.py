"""Driving the marker pipeline from tests: upload, wait for the marker, download it, ask MindAR."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.support.fixtures import MINDAR_FIXTURES
from tests.support.images import photo_jpeg
from tests.support.platform import wait_until

FIXTURES = MINDAR_FIXTURES


def target_photo() -> bytes:
    """A real photo to print: MindAR's own example image when shared/ is beside the checkout."""
    path = FIXTURES / "pictarize.jpg"
    return path.read_bytes() if path.exists() else photo_jpeg(800, 800, seed=11)


def as_rgb(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def wait_for_marker(api: TestClient, path: str, headers: dict[str, str], *, timeout: float = 120.0) -> dict:  # type: ignore[type-arg]
    def settled() -> dict | None:  # type: ignore[type-arg]
        body = api.get(path, headers=headers).json()
        return body if body["marker_status"] in ("ready", "failed") else None

    return wait_until(settled, timeout=timeout, what=f"marker of {path}")  # type: ignore[no-any-return]


def wait_for_renditions(
    api: TestClient, content_id: int, headers: dict[str, str], *, timeout: float = 120.0
) -> list[dict]:  # type: ignore[type-arg]
    """The content's videos once none is still being transcoded (each `ready` or `failed`)."""

    def settled() -> list[dict] | None:  # type: ignore[type-arg]
        found = api.get(f"/api/ar-content/{content_id}/videos", headers=headers).json()
        done = all(video["rendition_status"] in ("ready", "failed", "original") for video in found)
        return found if done else None

    return wait_until(settled, timeout=timeout, what=f"renditions of content {content_id}")  # type: ignore[no-any-return]


def download(api: TestClient, url: str) -> bytes:
    """GET a download URL: the API's own signed link (local storage) or a presigned S3 URL."""
    response = api.get(url) if url.startswith("http://testserver") else httpx.get(url, timeout=30)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"
    return response.content


def tmp_frames_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    return folder
