"""Acceptance of the web console: a new studio's whole first day in Debian's headless Chromium.

Against a real API server and real workers (marker compile, notifications, video renditions) and a
real SMTP server: the operator, signed in through the link `arv users create --admin` printed, creates
the company and invites its owner; the owner sets a password from the invitation e-mail, creates a
project, uploads a photo and a video (the progress bar moves), sees the marker become ready without a
reload, and the quality picture; downloads the QR code and the print sheet. The print sheet, rendered
to an image, holds a QR code of the content's public address, and the public page, with a fake camera
showing that print, tracks it. axe-core checks every page on the way; each page's screenshot is kept
in .test-artifacts/console/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.camera_feed import camera_showing, playable_video
from tests.support.mail_server import smtp_server
from tests.support.pipeline import target_photo
from tests.support.platform import REPO, worker_pool
from tests.support.servers import free_port
from tests.support.viewer import BROWSER_DIR, api_server, open_viewer

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)]

ARTIFACTS = REPO / ".test-artifacts" / "console"
# Slow enough that the bar is seen between 0 and 100 %, fast enough to take a few seconds.
UPLOAD_BYTES_PER_S = 400_000


def _day_part(part: str, **options: object) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "console_day.mjs"), json.dumps({"part": part, "shots": str(ARTIFACTS),
         "markerTimeoutMs": 120_000, **options})],
        capture_output=True, text=True, timeout=300, cwd=BROWSER_DIR,
    )  # fmt: skip
    assert done.returncode == 0, f"browser session failed:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], f"{report.get('failure')} at {report.get('failedAt')} (screenshots in {ARTIFACTS})"
    return report  # type: ignore[no-any-return]


def _link_in(mail) -> str:  # type: ignore[no-untyped-def]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+/console/set-password\?token=[\w-]+", text)
    assert found, text
    return found.group(0)


def _serious(report: dict) -> list:  # type: ignore[type-arg]
    return [(p["name"], v) for p in report["pages"] for v in p["violations"]]


def _pdf_page(pdf: Path, dpi: int) -> np.ndarray:
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(pdf), str(pdf.with_suffix(""))],
                   check=True, timeout=60)  # fmt: skip
    return cv2.imread(str(pdf.with_suffix(".png")))


def test_a_new_studio_s_first_day_in_the_console(arv_env: dict[str, str], tmp_path: Path) -> None:
    assert shutil.which("chromium") and shutil.which("pdftoppm"), "run scripts/install-system-packages.sh"
    assert (BROWSER_DIR / "node_modules" / "axe-core").is_dir(), "run scripts/install-node-deps.sh"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(target_photo())
    video = tmp_path / "clip.mp4"
    playable_video(video, seconds=20.0, container="mp4", picture="color=c=magenta")
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    with smtp_server() as mail:
        env = {
            **arv_env,
            "ARV_PUBLIC_BASE_URL": base,
            "ARV_SMTP_HOST": mail.host,
            "ARV_SMTP_PORT": str(mail.port),
            "ARV_SMTP_FROM": "ARV <arv@studio.test>",
        }
        created = subprocess.run(
            [sys.executable, "-m", "arv", "users", "create", "--admin", "--email", "operator@arv.test"],
            env={**env, "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        operator_link = created.stdout.strip()
        assert operator_link.startswith(f"{base}/console/set-password?token="), created.stdout

        with worker_pool(env, tmp_path) as pool, api_server(env, tmp_path, port=port):
            pool.start("markers,default", concurrency=1)
            pool.start("notifications,videos", concurrency=1)
            operator = _day_part("operator", base=base, link=operator_link, password="operator passphrase 1",
                                 company="Photo Studio One", companyEmail="hello@studio.test",
                                 ownerEmail="anna@studio.test")  # fmt: skip
            assert "anna@studio.test" in operator["inviteNotice"]
            from tests.support.platform import wait_until

            wait_until(lambda: mail.messages_to("anna@studio.test"), timeout=60, what="the invitation e-mail")
            owner_link = _link_in(mail.messages_to("anna@studio.test")[0])
            owner = _day_part("owner", base=base, link=owner_link, password="owner passphrase 22",
                              photo=str(photo), video=str(video), downloads=str(downloads),
                              uploadBytesPerS=UPLOAD_BYTES_PER_S)  # fmt: skip

            # A text file picked as the photo was refused by the page itself: nothing was sent.
            refused = owner["refusedInBrowser"]
            assert refused["posts"] == 0 and "notes.txt" in refused["text"], refused
            assert owner["droppedVideo"] == "clip.mp4"  # dropped on its zone, it went into the form
            # The upload's bar moved: values between empty and full were shown on the way.
            assert [p for p in owner["progress"] if 0 < p < 100], owner["progress"]
            assert owner["markerStatuses"][-1] == "ready" and owner["sameLoad"], owner
            assert len(owner["markerStatuses"]) >= 2, (
                "the page should have opened before the marker was ready"
            )
            assert owner["qualityPicture"]["width"] > 100, owner
            assert owner["newKeyShown"]
            assert {link.rsplit("-", 1)[1] for link in owner["printLinks"]} == {
                "a4.pdf",
                "a5.pdf",
                "10x15.pdf",
            }
            for part in (operator, owner):
                assert not _serious(part), _serious(part)
                assert not part["errors"], part["errors"]
            assert [p["status"] for p in owner["pages"] if p["name"] == "not-found"] == [404]

            # The downloads: the QR code and the print sheet both lead to the content's public page.
            public_url = owner["publicUrl"]
            assert public_url.startswith(f"{base}/ar/")
            # OpenCV's ArUco-based reader: the plain one can take a busy photo's detail for finder
            # patterns (tests/test_print_sheets.py).
            qr = cv2.imread(str(downloads / "qr.png"))
            assert cv2.QRCodeDetectorAruco().detectAndDecode(qr)[0] == public_url
            sheet = _pdf_page(downloads / "print-10x15.pdf", dpi=150)
            assert cv2.QRCodeDetectorAruco().detectAndDecode(sheet)[0] == public_url
            # The print, held up to a phone's camera: the public page finds it.
            print_jpeg = cv2.imencode(".jpg", sheet)[1].tobytes()
            camera = camera_showing(print_jpeg, tmp_path / "print.y4m", seconds=4.0)
            seen = open_viewer(public_url, camera=camera, until=["tracking", "error"], timeout_s=40,
                               screenshot=ARTIFACTS / "viewer-tracking.png")  # fmt: skip
            assert "tracking" in [s["state"] for s in seen["states"]], seen
    pages = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(pages) >= 15, pages
