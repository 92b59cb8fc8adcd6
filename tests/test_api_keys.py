"""API keys: listed, created and revoked within a company (the operator: any); a revoked key is refused
at once; `last_used_at` is written at most once a minute; `arv keys list|revoke`; `arv run` prints a key
only when it makes the first one; and a request without a valid key is refused before its body is read."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, update
from typer.testing import CliRunner

from arv.db.models import ApiKey, utcnow
from arv.db.session import session_scope
from arv.services.auth import create_first_admin_key, hash_key
from tests.conftest import Tenant, apply_env
from tests.support.platform import REPO, wait_until
from tests.support.servers import free_port
from tests.support.viewer import api_server

LISTED_FIELDS = {
    "id",
    "prefix",
    "label",
    "company_id",
    "is_admin",
    "created_at",
    "last_used_at",
    "revoked_at",
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_row(key: str) -> ApiKey:
    with session_scope() as session:
        row = session.query(ApiKey).filter_by(key_hash=hash_key(key)).one()
        session.expunge(row)
        return row


# ---- listing -----------------------------------------------------------------------------------


def test_a_company_lists_only_its_own_keys_and_the_operator_every_key(
    api: TestClient, make_tenant: Any, admin_headers: dict[str, str]
) -> None:
    a, b = make_tenant("A"), make_tenant("B")
    made = api.post("/api/keys", json={"label": "print shop laptop"}, headers=a.headers)
    assert made.status_code == 201, made.text

    mine = api.get("/api/keys", headers=a.headers)
    assert mine.status_code == 200
    keys = mine.json()
    assert [k["company_id"] for k in keys] == [a.company_id, a.company_id]
    assert keys[0]["label"] == "print shop laptop" and keys[0]["id"] == made.json()["id"]
    # Never a hash nor a key: only what a person needs to tell keys apart.
    assert all(set(k) == LISTED_FIELDS for k in keys)
    assert all(a.key not in str(k) and hash_key(a.key) not in str(k) for k in keys)
    assert keys[1]["prefix"] == a.key[:12] and keys[1]["last_used_at"] is not None

    theirs = api.get("/api/keys", headers=b.headers).json()
    assert [k["company_id"] for k in theirs] == [b.company_id]
    # A company key cannot widen its listing by naming another company.
    assert api.get(f"/api/keys?company_id={a.company_id}", headers=b.headers).json() == theirs

    everything = api.get("/api/keys", headers=admin_headers).json()
    assert len(everything) == 4 and any(k["is_admin"] for k in everything)
    only_a = api.get(f"/api/keys?company_id={a.company_id}", headers=admin_headers).json()
    assert [k["id"] for k in only_a] == [k["id"] for k in keys]


def test_keys_are_listed_newest_first_in_pages_by_before_id(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    for n in range(4):
        assert api.post("/api/keys", json={"label": f"k{n}"}, headers=tenant.headers).status_code == 201
    first = api.get("/api/keys?limit=2", headers=tenant.headers).json()
    assert [k["label"] for k in first] == ["k3", "k2"]
    rest = api.get(f"/api/keys?limit=2&before_id={first[-1]['id']}", headers=tenant.headers).json()
    assert [k["label"] for k in rest] == ["k1", "k0"]
    last = api.get(f"/api/keys?before_id={rest[-1]['id']}", headers=tenant.headers).json()
    assert [k["label"] for k in last] == [None]  # the tenant's first key, made without a label
    for bad in ("limit=0", "limit=501", "before_id=0", f"before_id={2**31}", f"company_id={2**63}"):
        assert api.get(f"/api/keys?{bad}", headers=admin_headers).status_code == 422, bad


# ---- creating ----------------------------------------------------------------------------------


def test_a_company_key_creates_keys_for_its_own_company_only(api: TestClient, make_tenant: Any) -> None:
    a, b = make_tenant("A"), make_tenant("B")
    made = api.post("/api/keys", json={"label": "front desk"}, headers=a.headers)
    assert made.status_code == 201
    body = made.json()
    assert set(body) == LISTED_FIELDS | {"key"}
    assert body["company_id"] == a.company_id and body["is_admin"] is False
    assert body["label"] == "front desk" and body["key"].startswith(body["prefix"])
    assert body["last_used_at"] is None and body["revoked_at"] is None
    # The key works, for its company.
    assert api.get(f"/api/companies/{a.company_id}", headers=bearer(body["key"])).status_code == 200
    assert api.get(f"/api/companies/{b.company_id}", headers=bearer(body["key"])).status_code == 404
    # Nor the key itself nor anything but its hash is stored.
    assert key_row(body["key"]).key_hash == hash_key(body["key"])

    for_b = api.post("/api/keys", json={"company_id": b.company_id}, headers=a.headers)
    assert for_b.status_code == 404
    assert api.post("/api/keys", json={"company_id": a.company_id}, headers=a.headers).status_code == 201
    admin = api.post("/api/keys", json={"admin": True}, headers=a.headers)
    assert admin.status_code == 403 and "admin" in admin.json()["detail"]
    assert [k["company_id"] for k in api.get("/api/keys", headers=b.headers).json()] == [b.company_id]


def test_the_operator_creates_company_keys_and_admin_keys(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    company_key = api.post("/api/keys", json={"company_id": tenant.company_id}, headers=admin_headers)
    assert company_key.status_code == 201 and company_key.json()["company_id"] == tenant.company_id
    admin_key = api.post("/api/keys", json={"admin": True, "label": "ops"}, headers=admin_headers)
    assert admin_key.status_code == 201
    assert admin_key.json()["is_admin"] is True and admin_key.json()["company_id"] is None
    assert api.get("/metrics", headers=bearer(admin_key.json()["key"])).status_code == 200

    unnamed = api.post("/api/keys", json={}, headers=admin_headers)
    assert unnamed.status_code == 422 and "company_id" in unnamed.json()["detail"]
    both = api.post("/api/keys", json={"admin": True, "company_id": tenant.company_id}, headers=admin_headers)
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    assert api.post("/api/keys", json={"company_id": 999}, headers=admin_headers).status_code == 404


@pytest.mark.parametrize("label", ["two\nlines", "tab\there", "x" * 101, "nul\x00"])
def test_a_label_with_control_characters_or_too_long_is_refused(
    api: TestClient, tenant: Tenant, label: str
) -> None:
    response = api.post("/api/keys", json={"label": label}, headers=tenant.headers)
    assert response.status_code == 422 and "label" in response.json()["detail"]


# ---- revoking ----------------------------------------------------------------------------------


def test_a_revoked_key_is_refused_on_the_very_next_request(api: TestClient, tenant: Tenant) -> None:
    second = api.post("/api/keys", json={"label": "to revoke"}, headers=tenant.headers).json()
    me = f"/api/companies/{tenant.company_id}"
    assert api.get(me, headers=bearer(second["key"])).status_code == 200

    assert api.delete(f"/api/keys/{second['id']}", headers=tenant.headers).status_code == 204
    refused = api.get(me, headers=bearer(second["key"]))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    revoked_at = key_row(second["key"]).revoked_at
    assert revoked_at is not None

    # Revoking again changes nothing, not even the time.
    assert api.delete(f"/api/keys/{second['id']}", headers=tenant.headers).status_code == 204
    assert key_row(second["key"]).revoked_at == revoked_at
    listed = {k["id"]: k for k in api.get("/api/keys", headers=tenant.headers).json()}
    assert listed[second["id"]]["revoked_at"] is not None

    # A key may revoke itself: the answer is sent, the next request is refused.
    assert api.delete(f"/api/keys/{key_row(tenant.key).id}", headers=tenant.headers).status_code == 204
    assert api.get(me, headers=tenant.headers).status_code == 401


def test_another_companys_key_and_admin_keys_are_not_a_companys_to_revoke(
    api: TestClient, make_tenant: Any, admin_key: str
) -> None:
    a, b = make_tenant("A"), make_tenant("B")
    for key_id in (key_row(a.key).id, key_row(admin_key).id, 999):
        response = api.delete(f"/api/keys/{key_id}", headers=b.headers)
        assert response.status_code == 404 and f"no API key {key_id}" in response.json()["detail"]
    assert api.get(f"/api/companies/{a.company_id}", headers=a.headers).status_code == 200
    assert api.get("/metrics", headers=bearer(admin_key)).status_code == 200
    assert api.delete(f"/api/keys/{2**31}", headers=b.headers).status_code == 422


def test_the_operator_revokes_any_key_but_never_the_last_admin_key(
    api: TestClient, tenant: Tenant, admin_key: str
) -> None:
    admin = bearer(admin_key)
    assert api.delete(f"/api/keys/{key_row(tenant.key).id}", headers=admin).status_code == 204
    assert api.get(f"/api/companies/{tenant.company_id}", headers=tenant.headers).status_code == 401

    own = key_row(admin_key).id
    last = api.delete(f"/api/keys/{own}", headers=admin)
    assert last.status_code == 409 and "arv keys create --admin" in last.json()["detail"]
    assert api.get("/metrics", headers=admin).status_code == 200

    spare = api.post("/api/keys", json={"admin": True}, headers=admin).json()
    assert api.delete(f"/api/keys/{own}", headers=admin).status_code == 204
    assert api.get("/metrics", headers=admin).status_code == 401
    # Now the spare is the last one.
    assert api.delete(f"/api/keys/{spare['id']}", headers=bearer(spare["key"])).status_code == 409


# ---- last use ----------------------------------------------------------------------------------


@contextmanager
def key_writes() -> Iterator[list[str]]:
    """The UPDATEs of api_keys this process sends while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def set_last_used(key: str, ago: timedelta) -> None:
    with session_scope() as session:
        session.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(last_used_at=utcnow() - ago)
        )


def test_last_used_at_is_set_by_use_and_written_at_most_once_a_minute(
    api: TestClient, tenant: Tenant
) -> None:
    me = f"/api/companies/{tenant.company_id}"
    assert key_row(tenant.key).last_used_at is None
    with key_writes() as writes:
        for _ in range(5):
            assert api.get(me, headers=tenant.headers).status_code == 200
    assert len(writes) == 1
    used = key_row(tenant.key).last_used_at
    assert used is not None and abs((utcnow() - used).total_seconds()) < 30

    set_last_used(tenant.key, timedelta(seconds=30))
    noted = key_row(tenant.key).last_used_at
    with key_writes() as writes:
        assert api.get(me, headers=tenant.headers).status_code == 200
    assert writes == [] and key_row(tenant.key).last_used_at == noted

    set_last_used(tenant.key, timedelta(seconds=90))
    with key_writes() as writes:
        assert api.get(me, headers=tenant.headers).status_code == 200
    assert len(writes) == 1
    renewed = key_row(tenant.key).last_used_at
    assert renewed is not None and (utcnow() - renewed).total_seconds() < 30
    # A refused key notes nothing.
    with key_writes() as writes:
        assert api.get(me, headers=bearer("arv_unknown")).status_code == 401
    assert writes == []


def test_a_key_is_looked_up_once_per_request(
    api: TestClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import arv.api.deps as deps

    calls: list[str] = []
    real = deps.authenticate_key

    def counting(key: str) -> Any:
        calls.append(key)
        return real(key)

    monkeypatch.setattr(deps, "authenticate_key", counting)
    # Two routes with a body (the key checked before it is read) and one without.
    assert api.post("/api/keys", json={}, headers=tenant.headers).status_code == 201
    assert api.post("/api/projects", json={"name": "p"}, headers=tenant.headers).status_code == 201
    assert api.get(f"/api/companies/{tenant.company_id}", headers=tenant.headers).status_code == 200
    assert calls == [tenant.key] * 3


# ---- the CLI -----------------------------------------------------------------------------------


def cli(*args: str) -> Any:
    from arv.cli import app

    return CliRunner().invoke(app, list(args))


def test_arv_keys_create_list_and_revoke(arv_env: dict[str, str], tenant: Tenant, admin_key: str) -> None:
    made = cli("keys", "create", "--company", str(tenant.company_id), "--label", "print shop laptop")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert re.fullmatch(r"arv_[\w-]{43}", key)  # the key alone on stdout, for scripts
    row = key_row(key)
    assert row.label == "print shop laptop" and row.company_id == tenant.company_id

    listing = cli("keys", "list")
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == [
        "id", "prefix", "label", "company", "created", "last used", "revoked"
    ]  # fmt: skip
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert set(by_id) == {str(row.id), str(key_row(tenant.key).id), str(key_row(admin_key).id)}
    assert key[:12] in by_id[str(row.id)] and "print shop laptop" in by_id[str(row.id)]
    assert key not in listing.stdout and row.key_hash not in listing.stdout
    assert "admin" in by_id[str(key_row(admin_key).id)]

    revoked = cli("keys", "revoke", str(row.id))
    assert revoked.exit_code == 0, revoked.output
    assert f"key {row.id}" in revoked.stdout and "revoked" in revoked.stdout
    assert key_row(key).revoked_at is not None
    again = cli("keys", "list", "--company", str(tenant.company_id)).stdout
    revoked_line = next(line for line in again.splitlines() if line.split()[0] == str(row.id))
    assert revoked_line.rstrip().endswith("UTC") and revoked_line.count("UTC") == 2  # created, revoked
    assert str(key_row(admin_key).id) not in [line.split()[0] for line in again.splitlines()[1:]]


def test_arv_keys_revoke_says_in_one_line_what_it_cannot_do(arv_env: dict[str, str], admin_key: str) -> None:
    unknown = cli("keys", "revoke", "4242")
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: there is no API key 4242\n"
    last = cli("keys", "revoke", str(key_row(admin_key).id))
    assert last.exit_code == 1 and last.stderr.count("\n") == 1
    assert "last admin key" in last.stderr and key_row(admin_key).revoked_at is None
    bad_label = cli("keys", "create", "--admin", "--label", "a\nb")
    assert bad_label.exit_code == 2 and "control characters" in bad_label.stderr


def test_arv_keys_create_keeps_its_interface(arv_env: dict[str, str]) -> None:
    admin = cli("keys", "create", "--admin")
    assert admin.exit_code == 0 and key_row(admin.stdout.strip()).is_admin
    assert cli("keys", "create").exit_code == 2
    assert cli("keys", "create", "--company", "77").exit_code == 1


# ---- arv run -----------------------------------------------------------------------------------


def arv_run_banner(env: dict[str, str], log_path: Path) -> str:
    """What `arv run` says at start, up to "ARV is running" and the lines after it; then it is stopped."""
    port = free_port()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arv", "run", "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log_path.read_text(), timeout=90, what="arv run")
        return log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in re.findall(r"started, pid (\d+)", log_path.read_text(errors="replace")):
            with suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)


def test_arv_run_prints_an_admin_key_only_when_it_makes_the_first_one(
    arv_env: dict[str, str], tmp_path: Path
) -> None:
    first = arv_run_banner(arv_env, tmp_path / "first.log")
    [key] = re.findall(r"^admin key: (arv_\S+)$", first, re.MULTILINE)
    row = key_row(key)
    assert row.is_admin and row.revoked_at is None

    second = arv_run_banner(arv_env, tmp_path / "second.log")
    assert "arv_" not in second
    assert "arv keys create --admin" in second
    with session_scope() as session:
        assert session.query(ApiKey).count() == 1


def test_the_first_admin_key_is_made_again_once_every_admin_key_is_revoked(arv_env: dict[str, str]) -> None:
    with session_scope() as session:
        assert create_first_admin_key(session) is not None
    with session_scope() as session:
        assert create_first_admin_key(session) is None
        session.execute(update(ApiKey).values(revoked_at=utcnow()))
    with session_scope() as session:
        key = create_first_admin_key(session)
    assert key is not None and key_row(key).is_admin


# ---- auth first --------------------------------------------------------------------------------

UPLOAD_BYTES = 40 * 1024 * 1024
CHUNK = 64 * 1024


def upload_head(port: int, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """The request line and headers of a 40 MB portrait upload, and the start of its multipart body."""
    boundary = "arvboundary"
    opening = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    closing = f"\r\n--{boundary}--\r\n".encode()
    length = len(opening) + UPLOAD_BYTES + len(closing)
    head = (
        f"POST /api/portraits/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode()
    return head, opening


def answered_within(sock: socket.socket, seconds: float) -> bytes:
    """The whole answer (head and `Content-Length` body) if it begins within `seconds`, else b""."""
    answer = b""
    while True:
        readable, _, _ = select.select([sock], [], [], seconds)
        chunk = sock.recv(65536) if readable else b""
        answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head.lower())
        if not chunk or (length and len(body) >= int(length.group(1))):
            return answer


def test_an_upload_without_a_valid_key_is_refused_before_its_body_is_read(
    arv_env: dict[str, str], tmp_path: Path, admin_key: str
) -> None:
    with api_server(arv_env, tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        for headers, detail in (({}, b"Bearer KEY"), ({"Authorization": "Bearer arv_not_a_key"}, b"revoked")):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                head, opening = upload_head(port, headers)
                sock.sendall(head + opening + b"\xff" * CHUNK)
                answer = answered_within(sock, 10)
                assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
                assert b"connection: close" in answer.lower() and detail in answer, answer
                # The server closed the connection: the rest of the 40 MB cannot be sent. What the
                # client got out before the reset is what the kernel's socket buffers took, not the app.
                sent = len(opening) + CHUNK
                with suppress(BrokenPipeError, ConnectionResetError):
                    while sent < UPLOAD_BYTES:
                        sent += sock.send(b"\xff" * CHUNK)
                assert sent < UPLOAD_BYTES // 4, f"the server took {sent} bytes of an unauthenticated upload"

        # The same first 64 KB with a valid key: the server waits for the rest (so the answer above
        # did not come from the upload being cut short).
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head, opening = upload_head(port, {"Authorization": f"Bearer {admin_key}"})
            sock.sendall(head + opening + b"\xff" * CHUNK)
            assert answered_within(sock, 1.5) == b""


def test_every_route_that_needs_a_key_refuses_without_one_before_reading_a_byte(api: TestClient) -> None:
    """Read from the app's own routes: whatever the route, no key means no call for the body."""
    app = api.app
    schema = app.openapi()  # type: ignore[attr-defined]
    with_body = [
        (method.upper(), re.sub(r"\{\w+\}", "1", path))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert ("POST", "/api/portraits/upload") in with_body and len(with_body) >= 6

    async def call(method: str, path: str) -> tuple[int, int]:
        body_asked = 0
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal body_asked
            body_asked += 1
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        }  # fmt: skip
        await app(scope, receive, send)  # type: ignore[arg-type]
        return statuses[0], body_asked

    for method, path in with_body:
        status, body_asked = asyncio.run(call(method, path))
        assert (status, body_asked) == (401, 0), f"{method} {path}: {status}, body asked {body_asked} times"


def test_a_database_down_during_the_key_check_is_a_503_not_a_body_error(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tenant: Tenant
) -> None:
    from arv.api.app import create_app

    # Nothing listens on port 1: every connection is refused, as by a database that is down.
    apply_env({"ARV_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/arv"}, monkeypatch)
    with TestClient(create_app()) as down:
        for request in (
            {"method": "POST", "url": "/api/projects", "json": {"name": "p"}},  # checked before the body
            {"method": "GET", "url": f"/api/companies/{tenant.company_id}"},  # checked by the dependency
        ):
            response = down.request(**request, headers=tenant.headers)  # type: ignore[arg-type]
            assert response.status_code == 503, response.text
            assert "database is unavailable" in response.json()["detail"]
            assert response.headers["retry-after"] == "2"


def test_two_revocations_at_once_cannot_revoke_both_of_the_last_two_admin_keys(
    arv_env: dict[str, str],
) -> None:
    from arv.db.session import get_sessionmaker
    from arv.services.auth import LastAdminKey, issue_key, revoke_key

    with session_scope() as session:
        first, second = (issue_key(session, admin=True).record.id for _ in range(2))
    outcome: list[BaseException | None] = []

    def revoke_second() -> None:
        try:
            with session_scope() as session:
                revoke_key(session, None, second)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test's thread
            outcome.append(exc)

    one = get_sessionmaker()()
    try:
        revoke_key(one, None, first)  # not committed yet: it holds the admin keys
        other = threading.Thread(target=revoke_second)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive(), "the second revocation did not wait for the first"
        one.commit()
    finally:
        one.close()
    other.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], LastAdminKey), outcome
    with session_scope() as session:
        assert session.get_one(ApiKey, second).revoked_at is None
        assert session.get_one(ApiKey, first).revoked_at is not None
