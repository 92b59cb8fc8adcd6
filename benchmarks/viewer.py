"""Times the AR page in headless Chromium: time to first detection, and bytes loaded before the camera.

Run from the repository root (needs Debian's chromium, ffmpeg, and the npm packages installed by
`make install` and scripts/install-node-deps.sh):

    .venv/bin/python benchmarks/viewer.py [--runs 3]

One photo (MindAR's example `pictarize.jpg`) is uploaded through the API twice: one content gets the
marker ARV's compiler makes (a real compile, in-process), the other the `.mind` MindAR's own browser
compiler made of the same photo (the baseline). A real uvicorn serves the page; each run opens it in a
fresh Chromium whose fake camera shows the print held in perspective. Printed per marker: seconds from
page load to the first `tracking`, and from the AR view being ready (`scanning`) to it. Bytes are the
transfer sizes of everything the page fetched before it asked for the camera, less the `.mind` file
and the content JSON (goal: under 2 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FIXTURES = REPO.parent / "shared" / "fixtures" / "mindar"
BYTES_GOAL = 2_000_000


def _prepare(data_dir: Path) -> dict[str, str]:
    env = {"ARV_DATA_DIR": str(data_dir), "ARV_SECRET_KEY": "benchmark", "ARV_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    return env


def _contents(photo: bytes, video: bytes) -> tuple[str, str]:
    """Two contents of the same photo: ARV's compiled marker, and MindAR's own .mind of it."""
    from tests.support.viewer import (
        create_content,
        in_process_tenant,
        place_marker,
        prepare_videos,
        run_queued,
    )

    from arv.db.migrate import upgrade_database
    from arv.db.session import session_scope
    from arv.services.auth import create_key

    upgrade_database()
    with session_scope() as session:
        admin = create_key(session, admin=True)
    tenant = in_process_tenant(admin)
    api = tenant.api
    arv = create_content(api, tenant, photo, video)
    mindar = create_content(api, tenant, photo, video)
    results = run_queued("generate_ar_content_marker_task")
    assert all("marker_key" in r for r in results), results
    place_marker(mindar["id"], (FIXTURES / "pictarize.mind").read_bytes())
    prepare_videos()
    return arv["unique_id"], mindar["unique_id"]


def _bytes_before_camera(report: dict) -> int:  # type: ignore[type-arg]
    """What the page itself cost before the camera: everything fetched, less the marker and content JSON."""
    excluded = sum(
        r["bytes"]
        for r in report["resourcesBeforeCamera"]
        if "/markers/" in r["name"] or "/api/ar/" in r["name"]
    )
    return int(report["bytesBeforeCamera"]) - excluded


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="page loads per marker")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="arv-viewer-bench-") as folder:
        tmp = Path(folder)
        env = _prepare(tmp / "data")
        from tests.support.camera_feed import camera_showing, playable_video
        from tests.support.viewer import api_server, open_viewer

        photo = (FIXTURES / "pictarize.jpg").read_bytes()
        arv_id, mindar_id = _contents(photo, playable_video(tmp / "clip.webm"))
        camera = camera_showing(photo, tmp / "print.y4m", seconds=6.0)
        rows = []
        with api_server(env, tmp) as base:
            for label, unique_id in (("ARV marker", arv_id), ("MindAR's own .mind (baseline)", mindar_id)):
                loads, after_ready, sizes, missed = [], [], [], 0
                for _ in range(options.runs):
                    report = open_viewer(
                        f"{base}/ar/{unique_id}", camera=camera, until=["tracking", "error"], timeout_s=30
                    )
                    if report["bytesBeforeCamera"] is None:
                        server_log = (tmp / "uvicorn.log").read_text()[-3000:]
                        raise SystemExit(f"{label}: the camera was never asked for: {report}\n{server_log}")
                    sizes.append(_bytes_before_camera(report))
                    marks = report["marks"]
                    if report["finalState"] != "tracking" or "arv-target-found" not in marks:
                        missed += 1
                        continue
                    loads.append(marks["arv-target-found"])
                    after_ready.append(marks["arv-target-found"] - marks.get("arv-scanning", 0.0))
                rows.append((label, loads, after_ready, sizes, missed))

    print(f"AR page, {options.runs} loads per marker, fake 640x480 camera showing the print in perspective")
    print(f"{'marker':32} {'load->found s (median, min-max)':>32} {'ready->found s':>16} {'missed':>7}")
    for label, loads, after_ready, _, missed in rows:
        if loads:
            spread = f"{statistics.median(loads):.2f} ({min(loads):.2f}-{max(loads):.2f})"
            ready = f"{statistics.median(after_ready):.2f}"
        else:
            spread, ready = "never found", "-"
        print(f"{label:32} {spread:>32} {ready:>16} {missed:>7}")
    sizes = [s for row in rows for s in row[3]]
    print(
        f"bytes before the camera starts (without .mind and content JSON): {max(sizes):,} "
        f"(goal under {BYTES_GOAL:,}: {'met' if max(sizes) < BYTES_GOAL else 'NOT met'})"
    )
    print("baseline from ../shared/VIEWER-TESTING.md: MindAR 1.2.5 found a target about 2 s after page load")


if __name__ == "__main__":
    main()
