"""Hardening (issue 11, "Headers" and "Secrets and operations"): the headers of pages, answers and
downloads; files under the data folder the owner's only; /healthz's details for the operator only;
deadlines for slow clients on a real uvicorn; docker-compose.yml without fixed secrets."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from arv.db.models import TaskRun
from arv.db.session import session_scope
from tests.conftest import Tenant, apply_env
from tests.support.images import mp4_bytes, photo_jpeg
from tests.support.platform import REPO, wait_until
from tests.support.servers import free_port
from tests.support.viewer import REFERENCE_MIND, create_content, place_marker, prepare_videos, run_queued

# What these tests check does not depend on the database: SQLite only.
SQLITE = pytest.mark.parametrize("db_backend", ["sqlite"])


def _policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: [sources]}."""
    directives = (part.split() for part in header.split(";") if part.strip())
    return {d[0]: d[1:] for d in directives}


def _ready_content(api: TestClient, tenant: Tenant) -> dict:  # type: ignore[type-arg]
    created = create_content(api, tenant, photo_jpeg(400, 300), mp4_bytes(), video_type="video/mp4")
    place_marker(created["id"], REFERENCE_MIND.read_bytes())
    prepare_videos()
    return created


# ---- headers ---------------------------------------------------------------------------------------


@SQLITE
def test_the_viewer_page_runs_only_its_own_scripts_is_never_framed_and_has_the_camera_for_itself(
    api: TestClient, tenant: Tenant
) -> None:
    created = _ready_content(api, tenant)
    page = api.get(f"/ar/{created['unique_id']}")
    assert page.status_code == 200 and 'data-state="loading"' in page.text
    policy = _policy(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    script = policy["script-src"]
    assert "'self'" in script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    # The inline import map runs by the nonce of this answer, and only it.
    [nonce] = [s[len("'nonce-") : -1] for s in script if s.startswith("'nonce-")]
    assert re.findall(r'<script type="importmap" nonce="([^"]+)">', page.text) == [nonce]
    assert len(re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)) == 2  # the map and the JSON data
    assert 'type="application/json"' in page.text
    # MindAR's detector workers start from blob: URLs; the video may be a blob: too.
    assert "blob:" in policy["worker-src"] and "blob:" in policy["media-src"]
    assert (
        api.get(f"/ar/{created['unique_id']}").headers["content-security-policy"]
        != page.headers["content-security-policy"]
    ), "a nonce is used once"

    permissions = dict(p.strip().split("=", 1) for p in page.headers["permissions-policy"].split(","))
    assert permissions["camera"] == "(self)"
    assert permissions["microphone"] == permissions["geolocation"] == permissions["payment"] == "()"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"

    # The plain pages (unknown, expired) have the same policy: their reload button is allowed by hash.
    unknown = api.get("/ar/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and 'onclick="location.reload()"' in unknown.text
    unknown_script = _policy(unknown.headers["content-security-policy"])["script-src"]
    assert "'unsafe-hashes'" in unknown_script
    assert "'sha256-9gOBGqEQINNDuds+tkXbNzih6klbz+KeCyxEj4KRLeM='" in unknown_script


@SQLITE
def test_the_viewer_policy_lets_in_the_storage_and_the_cdn_it_is_configured_with(
    arv_env: dict[str, str], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arv.api.app import create_app

    apply_env(
        {
            **arv_env,
            "ARV_STORAGE_URL": "s3://arv-csp",
            "ARV_S3_ENDPOINT": s3_endpoint,
            "ARV_S3_ACCESS_KEY": "testing",
            "ARV_S3_SECRET_KEY": "testing",
            "ARV_VIEWER_CDN_BASE_URL": "https://cdn.example.net/arv/viewer/",
        },
        monkeypatch,
    )
    with TestClient(create_app()) as api:
        page = api.get("/ar/00000000-0000-0000-0000-000000000000")
    policy = _policy(page.headers["content-security-policy"])
    storage = s3_endpoint.rstrip("/")
    for directive in ("media-src", "img-src", "connect-src"):
        assert storage in policy[directive], (directive, policy)
    assert "https://cdn.example.net" in policy["script-src"]
    assert "https://cdn.example.net" in policy["style-src"]
    assert storage not in policy["script-src"]


@SQLITE
def test_answers_that_are_not_pages_are_nosniff_and_can_never_run_as_a_page(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    for answer in (
        api.get("/healthz"),
        api.get("/api/projects"),  # 401 without a key
        api.get("/api/projects", headers=tenant.headers),
        api.get("/api/ar/unknown"),
    ):
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        policy = _policy(answer.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"] and "sandbox" in policy, answer.request.url
        assert answer.headers["referrer-policy"] == "no-referrer"
    # The API's docs page (Swagger UI from its CDN) keeps working, and is never framed either.
    docs = api.get("/docs")
    assert _policy(docs.headers["content-security-policy"])["frame-ancestors"] == ["'none'"]
    assert "camera=()" in docs.headers["permissions-policy"]


@SQLITE
def test_local_downloads_are_inline_for_media_and_attachments_for_anything_a_browser_could_run(
    api: TestClient, tenant: Tenant
) -> None:
    from arv.storage import get_storage

    created = _ready_content(api, tenant)
    body = api.get(f"/api/ar/{created['unique_id']}").json()
    video = api.get(body["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert re.fullmatch(r'inline; filename="[A-Za-z0-9_-]+\.mp4"', video.headers["content-disposition"])
    marker = api.get(body["marker_url"])
    assert marker.headers["content-disposition"].startswith("inline;")
    for answer in (video, marker):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in _policy(answer.headers["content-security-policy"])

    storage = get_storage()
    for key, content_type in (("uploads/page.html", "text/html"), ("uploads/drawing.svg", "image/svg+xml")):
        storage.put(
            key, b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", content_type
        )
        path = storage.download_url(key, expires_in=60).removeprefix("http://testserver")
        stored = api.get(path)
        assert stored.status_code == 200
        assert stored.headers["content-disposition"] == f'attachment; filename="{key.split("/")[1]}"'
        assert "sandbox" in _policy(stored.headers["content-security-policy"])


@SQLITE
def test_qr_codes_and_thumbnails_say_how_to_show_them(api: TestClient, tenant: Tenant) -> None:
    created = create_content(api, tenant, photo_jpeg(320, 240), None)
    run_queued("generate_qr_code")
    run_queued("generate_thumbnail")
    base = f"/api/ar-content/{created['id']}"
    png = api.get(f"{base}/qr.png", headers=tenant.headers)
    assert png.headers["content-disposition"] == f'inline; filename="ar-content-{created["id"]}-qr.png"'
    svg = api.get(f"{base}/qr.svg", headers=tenant.headers)
    assert svg.headers["content-disposition"] == f'attachment; filename="ar-content-{created["id"]}-qr.svg"'
    thumbnail = api.get(f"{base}/thumbnail.jpg", headers=tenant.headers)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-disposition"].startswith("inline;")
    for answer in (png, svg, thumbnail):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in _policy(answer.headers["content-security-policy"])


def test_s3_download_links_make_s3_answer_with_the_same_type_and_disposition(s3_endpoint: str) -> None:
    from arv.storage.s3 import S3Storage

    storage = S3Storage(
        bucket="arv-dispositions",
        endpoint_url=s3_endpoint,
        access_key="t",
        secret_key="t",
        region="us-east-1",
    )
    # Stored with a type that would render: the link overrides it.
    storage.put("qr/code.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "text/html")
    storage.put("videos/clip.mp4", mp4_bytes(), "video/mp4")
    svg = httpx.get(storage.download_url("qr/code.svg", expires_in=60))
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.headers["content-disposition"] == 'attachment; filename="code.svg"'
    video = httpx.get(storage.download_url("videos/clip.mp4", expires_in=60))
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["content-disposition"] == 'inline; filename="clip.mp4"'


# ---- /healthz ----------------------------------------------------------------------------------------


@SQLITE
def test_healthz_tells_anyone_each_state_and_only_the_operator_what_went_wrong(
    arv_env: dict[str, str], admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch, tenant: Tenant
) -> None:
    from arv.api.app import create_app

    dead_port = free_port()
    # Storage that cannot be reached: its error names the host and port.
    apply_env(
        {
            **arv_env,
            "ARV_STORAGE_URL": "s3://arv-health",
            "ARV_S3_ENDPOINT": f"http://127.0.0.1:{dead_port}",
            "ARV_S3_ACCESS_KEY": "t",
            "ARV_S3_SECRET_KEY": "t",
        },
        monkeypatch,
    )
    with session_scope() as session:
        session.add(TaskRun(name="deactivate_expired_content"))
    with session_scope() as session:
        session.execute(
            update(TaskRun)
            .where(TaskRun.name == "deactivate_expired_content")
            .values(last_error="OperationalError: could not connect to db.internal:5432 at /srv/arv")
        )
    with TestClient(create_app()) as api:
        for headers in ({}, tenant.headers, {"Authorization": "Bearer arv_not-a-key"}):
            public = api.get("/healthz", headers=headers)
            assert public.status_code == 503
            body = public.json()
            assert body["status"] == "degraded"
            assert body["checks"]["storage"] == {"ok": False}
            assert body["checks"]["database"] == {"ok": True}
            assert body["checks"]["sweep"] == {"ok": False}
            assert "last_error" not in body["periodic"]["deactivate_expired_content"]
            assert str(dead_port) not in public.text and "db.internal" not in public.text
            assert "error" not in public.text
        operator = api.get("/healthz", headers=admin_headers)
        assert operator.status_code == 503
        assert str(dead_port) in operator.json()["checks"]["storage"]["error"]
        assert "never run" in operator.json()["checks"]["sweep"]["error"]
        periodic = operator.json()["periodic"]["deactivate_expired_content"]
        assert "db.internal" in periodic["last_error"]


# ---- files under the data folder ----------------------------------------------------------------------


def _modes_open_to_others(root: Path) -> list[str]:
    """Everything below `root` (and `root`) whose mode lets anyone but the owner in."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_IMODE(mode) & ~wanted:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):o}")
    return found


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_each_part_makes_its_files_private_even_in_a_process_with_an_open_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not through the `arv` command (whose umask closes everything anyway): each place that creates
    a sensitive file sets its mode itself."""
    from arv.config import get_settings
    from arv.db.migrate import upgrade_database
    from arv.db.session import session_scope as scope
    from arv.jobs.store import enqueue
    from arv.services.previews import THUMBNAIL
    from arv.storage import get_storage, settings_signing_key
    from arv.tasks.app import get_celery_app

    data = tmp_path / "fresh" / "data"
    apply_env({"ARV_DATA_DIR": str(data), "ARV_SECRET_KEY": ""}, monkeypatch)
    with _umask(0o022):
        settings_signing_key(get_settings())
        upgrade_database()
        get_storage().put("images/a/b/photo.jpg", b"jpeg", "image/jpeg")
        get_celery_app()  # the publisher of wake-ups, and the broker's folders
        with scope() as session:
            # A wake-up through the filesystem broker: a message file in its queue folder.
            enqueue(session, THUMBNAIL, {"subject": "portrait", "id": 1}, company_id=None)
        wait_until(lambda: any((data / "broker" / "queue").iterdir()), timeout=10, what="a broker message")
    made = {p.relative_to(data).as_posix() for p in data.rglob("*")}
    assert {"secret_key", "arv.db", "storage/images/a/b/photo.jpg", "broker/queue"} <= made, made
    assert "arv.db-wal" in made or "arv.db-shm" in made, made
    assert _modes_open_to_others(tmp_path / "fresh") == []
    # An older install's key and data folder, readable by all, are closed at the next start.
    (data / "secret_key").chmod(0o644)
    data.chmod(0o755)
    apply_env({"ARV_DATA_DIR": str(data), "ARV_SECRET_KEY": ""}, monkeypatch)
    settings_signing_key(get_settings())
    upgrade_database()
    assert _modes_open_to_others(tmp_path / "fresh") == []


def test_a_fresh_data_folder_under_arv_run_holds_nothing_anyone_else_can_read(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ARV_")},
        "ARV_DATA_DIR": str(data),
        "ARV_LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as out, _umask(0o022):  # what a login shell usually has
        proc = subprocess.Popen(
            [sys.executable, "-m", "arv", "run", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
        )  # fmt: skip
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            with suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            return False

        wait_until(healthy, timeout=120, what="arv run healthy")
        [admin_key] = re.findall(r"admin key: (\S+)", log_path.read_text(errors="replace"))
        headers = {"Authorization": f"Bearer {admin_key}"}
        base = f"http://127.0.0.1:{port}"
        company = httpx.post(f"{base}/api/companies", json={"name": "Studio"}, headers=headers).json()
        portrait = httpx.post(
            f"{base}/api/portraits/upload",
            data={"company_id": str(company["id"])},
            files={"file": ("p.jpg", photo_jpeg(320, 240), "image/jpeg")},
            headers=headers,
        )
        assert portrait.status_code == 201, portrait.text

        def thumbnail_made() -> bool:
            url = f"{base}/api/portraits/{portrait.json()['id']}/thumbnail.jpg"
            return httpx.get(url, headers=headers).status_code == 200

        wait_until(thumbnail_made, timeout=60, what="a worker made the thumbnail")
        wait_until(lambda: (data / "beat-schedule").exists() or any(data.glob("beat-schedule*")), timeout=30)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=40)
        for pid in re.findall(r"started, pid (\d+)", log_path.read_text(errors="replace")):
            with suppress(ProcessLookupError):
                os.killpg(int(pid), 9)
    made = {p.relative_to(data).as_posix() for p in data.rglob("*")}
    for expected in ("secret_key", "arv.db", "results.db", "broker/queue", "metrics"):
        assert expected in made, (expected, sorted(made))
    assert any(name.startswith("storage/images/") for name in made), sorted(made)
    assert _modes_open_to_others(data) == []


# ---- slow clients, on a real uvicorn ----------------------------------------------------------------


@pytest.fixture
def served(arv_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[int, str]]:
    """`arv api` on a free port with 1 s deadlines; yields the port and an admin key."""
    from arv.services.auth import create_key

    with session_scope() as session:
        key = create_key(session, admin=True)
    port = free_port()
    env = {**os.environ, **arv_env, "ARV_HTTP_HEADER_TIMEOUT_S": "1", "ARV_HTTP_BODY_TIMEOUT_S": "1"}
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arv", "api", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    try:

        def up() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            with suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503)
            return False

        wait_until(up, timeout=30, what="arv api")
        yield port, key
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _until_closed(
    sock: socket.socket, *, drip: bytes = b"", step: int = 1, every_s: float = 0.25, limit_s: float = 10
) -> bytes:
    """Send `drip`, `step` bytes every `every_s`, while reading; return what came back once the server
    closed the connection (or `limit_s` passed)."""
    sock.settimeout(every_s)
    received = b""
    started = time.monotonic()
    position = 0
    while time.monotonic() - started < limit_s:
        if drip:
            start = position % len(drip)
            with suppress(OSError):
                sock.send(drip[start : start + step])
            position += step
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection was still open after {limit_s} s; got {received!r}")


@SQLITE
def test_a_client_sending_its_headers_a_byte_at_a_time_is_cut_off(served: tuple[int, str]) -> None:
    port, _ = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        answer = _until_closed(sock, drip=b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 500)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.9 < elapsed < 3, elapsed
    # One that connects and says nothing is closed too.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        assert _until_closed(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 3
    # A client that sends its request in good time is served, and again on the same connection.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(1.5)  # longer than the header deadline: it runs from a request's first byte only
            assert sock.recv(65536).startswith(b"HTTP/1.1 "), "served"


@SQLITE
def test_headers_past_the_size_bound_get_431_at_once(served: tuple[int, str]) -> None:
    port, _ = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1024 * 1024
        answer = _until_closed(sock, drip=huge, step=8192, every_s=0.005)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert time.monotonic() - started < 1, "refused when the bound was passed, not at the deadline"
    # Headers under the bound are served.
    big = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Big": "a" * 30_000})
    assert big.status_code in (200, 503)


@SQLITE
def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(served: tuple[int, str]) -> None:
    port, key = served
    head = (
        f"POST /api/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + b'{"name": "Slo')
        started = time.monotonic()
        answer = _until_closed(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"stopped arriving" in answer and b"connection: close" in answer.lower()
    assert 0.9 < elapsed < 3, elapsed
    # A body that keeps coming, slower than the whole deadline in all but never stalling, is read.
    body = b'{"name": "Patient Studio"}'
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.replace(b"100", str(len(body)).encode()))
        for i in range(0, len(body), 4):
            sock.sendall(body[i : i + 4])
            time.sleep(0.3)
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")


# ---- docker-compose.yml and .env ----------------------------------------------------------------------

COMPOSE = REPO / "docker-compose.yml"
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|ROOT_USER|_KEY$")
REQUIRED_VARIABLE = re.compile(r"^\$\{([A-Z0-9_]+):\?[^}]*\}$")


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_docker_compose_has_no_fixed_secrets_and_minio_stays_inside_with_a_user_for_the_app() -> None:
    """Docker cannot run here (no engine): the file is checked as data, as `docker compose config` would
    read it."""
    services = _compose()["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), name
        for variable, value in environment.items():
            if SECRET_WORDS.search(variable):
                assert REQUIRED_VARIABLE.match(str(value)), (name, variable, value)
            for secret in re.findall(r"://[^:/@]+:([^@]+)@", str(value)):  # passwords inside URLs
                assert REQUIRED_VARIABLE.match(secret), (name, variable, value)
    minio = services["minio"]
    assert "ports" not in minio, "MinIO is reached by the services, never published on the host"
    api = services["api"]["environment"]
    root_user = minio["environment"]["MINIO_ROOT_USER"]
    assert (
        api["ARV_S3_ACCESS_KEY"] != root_user
        and api["ARV_S3_SECRET_KEY"] != minio["environment"]["MINIO_ROOT_PASSWORD"]
    )
    init = services["minio-init"]
    assert init["image"].startswith("minio/mc") and init.get("restart") == "no"
    script = " ".join(init.get("entrypoint", [])) + " ".join(init.get("command", []))
    assert "mc admin user add" in script and "mc admin policy attach" in script
    assert services["api"]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}
    policy = (REPO / "deploy" / "minio-arv-policy.json").read_text()
    assert '"arn:aws:s3:::arv/*"' in policy and '"arn:aws:s3:::arv"' in policy
    assert "s3:*" not in policy and '"*"' not in policy
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_make_env_writes_random_secrets_once_and_never_overwrites(tmp_path: Path) -> None:
    assert shutil.which("make")
    target = tmp_path / ".env"

    def make_env() -> str:
        done = subprocess.run(
            ["make", "-s", "env", f"ENV_FILE={target}", f"PYTHON={sys.executable}"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    make_env()
    first = target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in first.splitlines() if line and not line.startswith("#"))
    needed = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    assert needed <= set(values), needed - set(values)
    secrets = [v for k, v in values.items() if re.search("PASSWORD|SECRET", k)]
    assert len(secrets) == 4 and all(len(v) >= 32 for v in secrets), values
    assert len(set(secrets)) == len(secrets)
    # The application's MinIO user is not MinIO's administrator.
    assert values["ARV_S3_ACCESS_KEY"] != values["MINIO_ROOT_USER"]
    assert "already exists" in make_env()
    assert target.read_text() == first
