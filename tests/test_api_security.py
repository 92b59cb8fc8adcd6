"""Tenants are isolated: every endpoint needs a key, and another company's ids answer 404 with no data.

The endpoints are read from the app itself, so a new route is covered (or this test says how to cover it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from arv.db.session import session_scope
from arv.services.notify.outbox import create_notification
from tests.conftest import Tenant
from tests.support.images import mp4_bytes, photo_jpeg

# Open to anyone: the public viewer and the health check. (Signed download links, the viewer's static
# files and the page itself are outside the OpenAPI schema these tests read.)
PUBLIC = {"/healthz", "/ar/{unique_id}", "/api/ar/{unique_id}"}
# Only the operator may call these; a company key gets 403 whatever the ids.
ADMIN_ONLY = {("POST", "/api/companies"), ("PATCH", "/api/companies/{company_id}"), ("GET", "/metrics")}

JPEG = photo_jpeg(200, 160)


@dataclass
class Owned:
    """Records of company A that company B tries to reach."""

    ids: dict[str, Any]
    requests: dict[tuple[str, str], dict[str, Any]]


def _owned_by(api: TestClient, owner: Tenant) -> Owned:
    h = owner.headers
    project = api.post("/api/projects", json={"name": "A's project"}, headers=h).json()
    portrait = api.post(
        "/api/portraits/upload", files={"file": ("a.jpg", JPEG, "image/jpeg")}, headers=h
    ).json()
    content = api.post(
        "/api/ar-content",
        data={"project_id": str(project["id"]), "title": "A"},
        files={"image": ("a.jpg", JPEG, "image/jpeg"), "video": ("v.mp4", mp4_bytes(), "video/mp4")},
        headers=h,
    ).json()
    with session_scope() as session:
        notification = create_notification(
            session,
            company_id=owner.company_id,
            notification_type="expiry_warning",
            dedupe_key=f"security-test-{owner.company_id}",
            project_id=project["id"],
            payload={"project_name": project["name"], "expires_at": "2030-01-01T00:00:00+00:00"},
        )
        assert notification is not None
        notification_id = notification.id
    ids = {
        "notification_id": notification_id,
        "company_id": owner.company_id,
        "project_id": project["id"],
        "portrait_id": portrait["id"],
        "content_id": content["id"],
        "task_id": content["task_id"],
        "video_id": content["active_video_id"],
        "key_id": api.post("/api/keys", json={"label": "A's"}, headers=h).json()["id"],
    }
    # A valid request body per write endpoint, so a refusal can only come from ownership.
    requests: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/projects"): {"json": {"name": "x", "company_id": owner.company_id}},
        ("PATCH", "/api/projects/{project_id}"): {"json": {"name": "renamed"}},
        ("PATCH", "/api/ar-content/{content_id}"): {"json": {"title": "renamed"}},
        ("PATCH", "/api/companies/{company_id}/settings"): {"json": {"language": "ru"}},
        ("POST", "/api/keys"): {"json": {"company_id": owner.company_id}},
        ("POST", "/api/portraits/upload"): {
            "files": {"file": ("b.jpg", JPEG, "image/jpeg")},
            "data": {"company_id": str(owner.company_id)},
        },
        ("POST", "/api/ar-content"): {
            "files": {"image": ("b.jpg", JPEG, "image/jpeg")},
            "data": {"project_id": str(project["id"]), "title": "x"},
        },
        ("POST", "/api/ar-content/{content_id}/videos"): {
            "files": {"video": ("v.mp4", mp4_bytes(), "video/mp4")}
        },
        ("PUT", "/api/ar-content/{content_id}/rotation"): {
            "json": {"rotation_type": "daily", "time_of_day": "09:00", "video_sequence": [ids["video_id"]]}
        },
    }
    return Owned(ids, requests)


# Served outside the OpenAPI schema, so listed here to be checked all the same.
UNDOCUMENTED = [("GET", "/metrics")]


def _routes(api: TestClient) -> list[tuple[str, str]]:
    """Every endpoint the app declares, from its OpenAPI schema (the public way to list them)."""
    schema = api.app.openapi()  # type: ignore[attr-defined]
    found = [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if path not in PUBLIC
    ]
    found += UNDOCUMENTED
    # A listing that came back empty would make every check below pass: make sure it did not.
    assert len(found) >= 20 and ("POST", "/api/portraits/upload") in found, found
    return found


def _fill(path: str, ids: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in ids:
            pytest.fail(f"{path}: no test record for path parameter '{name}'; add one to _owned_by")
        return str(ids[name])

    return re.sub(r"\{(\w+)\}", value, path)


def test_every_private_endpoint_refuses_requests_without_a_key(api: TestClient, tenant: Tenant) -> None:
    owned = _owned_by(api, tenant)
    for method, path in _routes(api):
        response = api.request(method, _fill(path, owned.ids), **owned.requests.get((method, path), {}))
        assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a key"
        bad = api.request(
            method,
            _fill(path, owned.ids),
            headers={"Authorization": "Bearer arv_wrong"},
            **owned.requests.get((method, path), {}),
        )
        assert bad.status_code == 401, f"{method} {path} answered {bad.status_code} to an unknown key"


def test_another_companys_key_gets_404_and_no_data(api: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    owner, intruder = make_tenant("A"), make_tenant("B")
    owned = _owned_by(api, owner)
    secrets = {str(v) for k, v in owned.ids.items() if k != "company_id"}
    for method, path in _routes(api):
        response = api.request(
            method, _fill(path, owned.ids), headers=intruder.headers, **owned.requests.get((method, path), {})
        )
        if (method, path) in ADMIN_ONLY:
            assert response.status_code == 403, f"{method} {path}: {response.status_code}"
            continue
        if "{" in path or (method, path) in owned.requests:
            # Either it names A's records (404), or it writes for A's company (404 for the company).
            assert response.status_code == 404, (
                f"{method} {path} gave {response.status_code}: {response.text}"
            )
        else:
            # A listing: it answers, but with none of A's records.
            assert response.status_code == 200, f"{method} {path}: {response.status_code}"
            body = response.json()
            items = body if isinstance(body, list) else body.get("items", [])
            assert all(str(item.get("id")) not in secrets for item in items), f"{method} {path} leaks"


def test_admin_key_acts_for_any_company(
    api: TestClient, tenant: Tenant, admin_headers: dict[str, str]
) -> None:
    owned = _owned_by(api, tenant)
    response = api.get(f"/api/projects/{owned.ids['project_id']}", headers=admin_headers)
    assert response.status_code == 200
    missing_company = api.post("/api/projects", json={"name": "x"}, headers=admin_headers)
    assert missing_company.status_code == 422 and "company_id" in missing_company.json()["detail"]
