"""The notifications API: a company lists its own outbox, newest first, filtered, and resends failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from arv.db.models import Job, JobStatus, NotificationType, utcnow
from arv.db.session import session_scope
from arv.services.notify import outbox
from arv.services.notify.delivery import DELIVER
from tests.conftest import apply_env
from tests.support.jobs import run_job_here
from tests.support.mail_server import smtp_server


def notify(company_id: int, notification_type: str, project_id: int) -> int:
    with session_scope() as session:
        notification = outbox.create_notification(
            session,
            company_id=company_id,
            notification_type=notification_type,
            dedupe_key=f"{notification_type}:{project_id}",
            project_id=project_id,
        )
        assert notification is not None
        return notification.id


def run_queued_delivery_jobs() -> None:
    with session_scope() as session:
        queued = list(
            session.scalars(select(Job.id).where(Job.kind == DELIVER.name, Job.status == JobStatus.QUEUED))
        )
    for job_id in queued:
        run_job_here(job_id)


def test_a_company_lists_its_notifications_newest_first_and_resends_failed_ones(
    api: TestClient, make_tenant, arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    studio = make_tenant("Studio", contact_email="studio@example.com")
    other = make_tenant("Other", contact_email="other@example.com", language="ru")
    expires = (utcnow() + timedelta(days=3)).isoformat()
    projects = [
        api.post(
            "/api/projects", json={"name": f"album {n}", "expires_at": expires}, headers=studio.headers
        ).json()
        for n in range(2)
    ]
    other_project = api.post(
        "/api/projects", json={"name": "альбом", "expires_at": expires}, headers=other.headers
    )
    first = notify(studio.company_id, NotificationType.EXPIRY_WARNING, projects[0]["id"])
    second = notify(studio.company_id, NotificationType.EXPIRED, projects[1]["id"])
    notify(other.company_id, NotificationType.EXPIRY_WARNING, other_project.json()["id"])
    # No mail server is configured yet: every e-mail delivery fails, with that reason.
    run_queued_delivery_jobs()

    listed = api.get("/api/notifications", headers=studio.headers)
    assert listed.status_code == 200
    body = listed.json()
    assert [n["id"] for n in body] == [second, first]
    fields = {"id", "notification_type", "project_id", "ar_content_id", "subject", "message", "created_at"}
    assert set(body[0]) >= fields | {"deliveries"}
    (delivery,) = body[1]["deliveries"]
    assert delivery["channel"] == "email" and delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "ARV_SMTP_HOST" in delivery["last_error"] and delivery["sent_at"] is None
    assert body[1]["subject"].startswith('Project "album 0" expires on')

    by_type = api.get("/api/notifications", params={"notification_type": "expired"}, headers=studio.headers)
    assert [n["id"] for n in by_type.json()] == [second]
    assert api.get("/api/notifications", params={"status": "sent"}, headers=studio.headers).json() == []
    paged = api.get("/api/notifications", params={"limit": 1, "offset": 1}, headers=studio.headers)
    assert [n["id"] for n in paged.json()] == [first]
    after_cursor = api.get("/api/notifications", params={"before_id": second}, headers=studio.headers)
    assert [n["id"] for n in after_cursor.json()] == [first]
    (theirs,) = api.get("/api/notifications", headers=other.headers).json()
    assert theirs["subject"].startswith("Срок проекта «альбом» истекает")
    assert api.get("/api/notifications", params={"status": "lost"}, headers=studio.headers).status_code == 422

    assert api.post(f"/api/notifications/{first}/resend", headers=other.headers).status_code == 404
    with smtp_server() as mail:
        apply_env({**arv_env, "ARV_SMTP_HOST": mail.host, "ARV_SMTP_PORT": str(mail.port)}, monkeypatch)
        resent = api.post(f"/api/notifications/{first}/resend", headers=studio.headers)
        assert resent.status_code == 202, resent.text
        assert [d["status"] for d in resent.json()["deliveries"]] == ["pending"]
        run_queued_delivery_jobs()
        assert len(mail.messages_to("studio@example.com")) == 1
    (delivery,) = api.get(f"/api/notifications/{first}", headers=studio.headers).json()["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 2 and delivery["sent_at"]
    again = api.post(f"/api/notifications/{first}/resend", headers=studio.headers)
    assert again.status_code == 409 and "nothing to resend" in again.json()["detail"]
