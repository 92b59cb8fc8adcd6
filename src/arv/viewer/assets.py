"""The browser files of the AR page: where they are on disk, and the URLs the page loads them from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
# Path under which the API serves STATIC_DIR.
STATIC_ROUTE = "/viewer/static/"
# scripts/install-viewer-assets.sh copies these from npm packages pinned in package-lock.json.
VENDOR_FILES = {
    "three": "vendor/three/three.module.min.js",
    "three/addons/": "vendor/three/addons/",
    "mindar-image-three": "vendor/mind-ar/mindar-image-three.prod.js",
}
# MindAR's bundle keeps its Controller in a chunk whose name carries a content hash; the page imports it
# (as this name) to warm MindAR up before the camera answers. The chunk exports it as `C` in the pinned
# mind-ar 1.2.5 build (package-lock.json).
CONTROLLER_MODULE = "mindar-image-controller"
CONTROLLER_CHUNK_GLOB = "vendor/mind-ar/controller-*.js"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


class AssetsNotInstalled(RuntimeError):
    """The npm files are missing: the install step was skipped."""


def assets_base(cdn_base_url: str) -> str:
    """Where the page loads its files from: a CDN mirroring the static folder when set, else the API."""
    return cdn_base_url.rstrip("/") + "/" if cdn_base_url else STATIC_ROUTE


def _controller_chunk() -> str | None:
    """The installed chunk of MindAR's bundle that holds its Controller, relative to the static folder."""
    found = sorted(STATIC_DIR.glob(CONTROLLER_CHUNK_GLOB))
    return found[0].relative_to(STATIC_DIR).as_posix() if len(found) == 1 else None


def _module_files() -> dict[str, str]:
    files = dict(VENDOR_FILES)
    chunk = _controller_chunk()
    if chunk is not None:
        files[CONTROLLER_MODULE] = chunk
    return files


def import_map(base: str) -> dict[str, dict[str, str]]:
    """The page's import map: bare module names of MindAR's bundle (and its Controller's chunk) resolved
    to the served files."""
    return {"imports": {name: base + path for name, path in _module_files().items()}}


def check_installed() -> None:
    """Raise AssetsNotInstalled unless every vendor file the page loads is on disk."""
    missing = [p for p in VENDOR_FILES.values() if not p.endswith("/") and not (STATIC_DIR / p).is_file()]
    if _controller_chunk() is None:
        missing.append(CONTROLLER_CHUNK_GLOB)
    if missing:
        raise AssetsNotInstalled(
            f"the viewer's browser files are not installed ({', '.join(missing)}): run "
            "scripts/install-viewer-assets.sh (make install does)"
        )


@lru_cache
def vendor_modules() -> tuple[str, ...]:
    """Every library module the page imports, relative to the static folder, so that the page can ask
    for all of them at once instead of discovering MindAR's chunks one import at a time."""
    vendor = STATIC_DIR / "vendor"
    return tuple(sorted(p.relative_to(STATIC_DIR).as_posix() for p in vendor.rglob("*.js")))


@dataclass(frozen=True)
class StaticFile:
    """A file to send: its path (perhaps the gzip copy), media type and content encoding."""

    path: Path
    media_type: str
    encoding: str | None


def find_static(relative: str, *, accepts_gzip: bool) -> StaticFile | None:
    """The served file for a path under the static folder, or None; never a file outside it."""
    root = STATIC_DIR.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix not in MEDIA_TYPES:
        return None
    media_type = MEDIA_TYPES[path.suffix]
    compressed = path.with_name(path.name + ".gz")
    if accepts_gzip and compressed.is_file():
        return StaticFile(compressed, media_type, "gzip")
    return StaticFile(path, media_type, None)
