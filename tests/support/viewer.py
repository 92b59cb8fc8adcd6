"""Driving the viewer's parts from tests: content with a marker, queued jobs run in-process, a browser."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from arv.db.models import ARContent, Job, JobStatus, MarkerStatus
from arv.db.session import session_scope
from arv.storage import get_storage
from tests.support.fixtures import MINDAR_FIXTURES
from tests.support.platform import REPO, wait_until
from tests.support.servers import free_port

if TYPE_CHECKING:
    # Only the type: importing conftest clears the process's ARV_ variables (benchmarks use this module).
    from tests.conftest import Tenant

REFERENCE_MIND = MINDAR_FIXTURES / "card.mind"
BROWSER_DIR = REPO / "tests" / "browser"


def create_content(
    api: TestClient, tenant: Tenant, image: bytes, video: bytes | None, *, video_type: str = "video/webm"
) -> dict[str, Any]:
    project = api.post("/api/projects", json={"name": "Prints"}, headers=tenant.headers).json()
    files: dict[str, tuple[str, bytes, str]] = {"image": ("photo.jpg", image, "image/jpeg")}
    if video is not None:
        files["video"] = ("clip" + (".webm" if video_type == "video/webm" else ".mp4"), video, video_type)
    created = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "Portrait"},
        files=files,
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def in_process_tenant(admin_key: str, name: str = "Benchmark") -> SimpleNamespace:
    """A company made through the API with the operator's `admin_key`, a key of its own, and a
    TestClient of the API in this process (for benchmarks: `.api`, `.company_id`, `.headers`)."""
    from arv.api.app import create_app
    from arv.services.auth import create_key

    api = TestClient(create_app())
    company = api.post(
        "/api/companies", json={"name": name}, headers={"Authorization": f"Bearer {admin_key}"}
    ).json()
    with session_scope() as session:
        key = create_key(session, company_id=company["id"])
    return SimpleNamespace(api=api, company_id=company["id"], headers={"Authorization": f"Bearer {key}"})


def queued_jobs(task_name: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(Job.id)
                .where(Job.kind == task_name, Job.status == JobStatus.QUEUED)
                .order_by(Job.created_at)
            )
        )


def run_queued(task_name: str) -> list[dict[str, Any]]:
    """Run every queued job of `task_name` in this process, as a worker would; returns their results."""
    from arv.tasks.app import get_celery_app

    app = get_celery_app()
    app.loader.import_default_modules()  # the task modules, as a worker imports them at start
    task = app.tasks[task_name]
    return [task.apply(args=[job_id]).get(propagate=False) for job_id in queued_jobs(task_name)]


def prepare_videos() -> list[dict[str, Any]]:
    """Transcode every video waiting for its renditions, in this process, as the videos worker would."""
    return run_queued("transcode_video")


def place_marker(content_id: int, mind: bytes) -> None:
    """Give content a ready marker without compiling (for tests of the page's surroundings, not of AR)."""
    key = f"markers/test-{content_id}.mind"
    get_storage().put(key, mind, "application/octet-stream")
    with session_scope() as session:
        content = session.get(ARContent, content_id)
        assert content is not None
        content.marker_key = key
        content.marker_status = MarkerStatus.READY


@contextmanager
def api_server(env: dict[str, str], log_dir: Path, *, port: int | None = None) -> Iterator[str]:
    """A real uvicorn serving the API on `port` (a free loopback port by default); yields its base URL."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = {**os.environ, **env, "ARV_PUBLIC_BASE_URL": base}
    log_path = log_dir / "uvicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "arv.api.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env=server_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{log_path.read_text()[-2000:]}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code in (200, 503)
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30, what="the API server")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _page_options(
    url: str,
    *,
    until: list[str],
    timeout_s: float,
    hold_s: float = 0.0,
    tap: bool = False,
    screenshot: Path | None = None,
    refound_within_s: float | None = None,
    connection: dict[str, Any] | None = None,
    video_picture: bool = False,
    signal_file: Path | None = None,
    video_ready_within_s: float | None = None,
    corners: bool = False,
) -> dict[str, Any]:
    """What viewer_session.mjs does on one page load (its header comment says what each does)."""
    return {
        "url": url,
        "until": until,
        "timeoutS": timeout_s,
        "holdS": hold_s,
        "tap": tap,
        "screenshot": str(screenshot) if screenshot else None,
        "refoundWithinS": refound_within_s,
        "connection": connection,
        "videoPicture": video_picture,
        "signalFile": str(signal_file) if signal_file else None,
        "videoReadyWithinS": video_ready_within_s,
        "corners": corners,
    }


def _session_timeout(options: dict[str, Any]) -> float:
    """How long one page load may take at most, with the browser's start and its waits for pictures."""
    waits = ("timeoutS", "holdS", "refoundWithinS", "videoReadyWithinS")
    return sum(options[name] or 0 for name in waits) + 80


def open_viewer(
    url: str,
    *,
    camera: Path | None,
    until: list[str],
    timeout_s: float,
    grant_camera: bool = True,
    without_webgl: bool = False,
    **page: Any,
) -> dict[str, Any]:
    """Open the AR page in headless Chromium (tests/browser/viewer_session.mjs) and report what it did.

    `page` takes the options of _page_options. The report has the page's performance marks (`marks`,
    seconds since navigation: arv-target-found, arv-video-first-frame, ...), with `video_picture`
    the video's picture (see video_picture()), and with `corners` the tracked print's corners on screen
    at each pose (`corners`: rows of [seconds since navigation, x0, y0, ... x3, y3])."""
    options = {
        **_page_options(url, until=until, timeout_s=timeout_s, **page),
        "camera": str(camera) if camera else None,
        "grantCamera": grant_camera,
        "withoutWebGL": without_webgl,
    }
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "viewer_session.mjs"), json.dumps(options)],
        capture_output=True, text=True, timeout=_session_timeout(options), cwd=BROWSER_DIR,
    )  # fmt: skip
    assert done.returncode == 0, f"browser session failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class ViewerBrowser:
    """One headless Chromium kept open with one fake camera, for several loads of the AR page without a
    browser start each (viewer_session.mjs --serve). Made by viewer_browser()."""

    def __init__(self, process: subprocess.Popen[str], log_path: Path) -> None:
        self._process = process
        self._log_path = log_path
        self._lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(
            target=self._read, args=(process.stdout,), daemon=True, name="viewer-browser"
        ).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)

    def open(self, url: str, *, until: list[str], timeout_s: float, **page: Any) -> dict[str, Any]:
        """One load of the page, as open_viewer() does it; the report of what it did."""
        options = _page_options(url, until=until, timeout_s=timeout_s, **page)
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(options) + "\n")
        self._process.stdin.flush()
        try:
            line = self._lines.get(timeout=_session_timeout(options))
        except queue.Empty:
            raise AssertionError(
                f"the browser never reported:\n{self._log_path.read_text()[-3000:]}"
            ) from None
        return json.loads(line)  # type: ignore[no-any-return]


@contextmanager
def viewer_browser(*, camera: Path | None, log_dir: Path) -> Iterator[ViewerBrowser]:
    """A ViewerBrowser whose fake camera plays `camera`; its messages go to log_dir/chromium.log."""
    log_path = log_dir / "chromium.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["node", str(BROWSER_DIR / "viewer_session.mjs"), "--serve",
             json.dumps({"camera": str(camera) if camera else None})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=BROWSER_DIR,
        )  # fmt: skip
    try:
        yield ViewerBrowser(process, log_path)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def video_picture(sample: dict[str, Any]) -> np.ndarray:
    """The picture a video sample of open_viewer's report holds, as an RGB array (height, width, 3)."""
    picture = sample["picture"]
    rows = np.asarray(picture["rgb"], dtype=np.float64)
    return rows.reshape(picture["height"], picture["width"], 3)
