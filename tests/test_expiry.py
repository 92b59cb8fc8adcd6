"""Expiry passes on SQLite and PostgreSQL: one warning per expiry date, deactivation, renewal, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from arv.db.models import ARContent, Company, Notification, Project, Video, utcnow
from arv.db.session import session_scope
from arv.services import expiry
from arv.services.notify import messages

NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


def make_company(language: str = "en") -> int:
    with session_scope() as session:
        company = Company(name=f"Studio {language}", contact_email="owner@studio.test", language=language)
        session.add(company)
        session.flush()
        return company.id


def make_project(
    company_id: int,
    expires_at: datetime | None,
    *,
    status: str = "active",
    notify_days: int = 7,
    contents: int = 1,
    name: str = "Wedding album",
) -> int:
    with session_scope() as session:
        project = Project(
            company_id=company_id,
            name=name,
            status=status,
            expires_at=expires_at,
            notify_before_expiry_days=notify_days,
        )
        session.add(project)
        session.flush()
        for index in range(contents):
            session.add(
                ARContent(
                    company_id=company_id,
                    project_id=project.id,
                    title=f"Portrait {index}",
                    image_key=f"images/{project.id}-{index}.png",
                    image_content_type="image/png",
                    image_width=640,
                    image_height=480,
                    is_active=status == "active",
                )
            )
        return project.id


def notifications(notification_type: str | None = None) -> list[Notification]:
    with session_scope() as session:
        query = select(Notification).order_by(Notification.id)
        if notification_type:
            query = query.where(Notification.notification_type == notification_type)
        return list(session.scalars(query))


def project_state(project_id: int) -> tuple[str, list[bool]]:
    with session_scope() as session:
        status = session.get_one(Project, project_id).status
        active = list(
            session.scalars(
                select(ARContent.is_active).where(ARContent.project_id == project_id).order_by(ARContent.id)
            )
        )
        return status, active


def words_of(notification: Notification) -> messages.RenderedMessage:
    with session_scope() as session:
        return messages.render_notification(session, notification)


def warn(now: datetime = NOW) -> int:
    with session_scope() as session:
        return expiry.check_expiring_projects(session, now=now).warnings_created


def expire(now: datetime = NOW) -> expiry.ExpiryPassResult:
    with session_scope() as session:
        return expiry.deactivate_expired_content(session, now=now)


def test_project_expiring_within_its_window_is_warned_once(arv_env: dict[str, str]) -> None:
    company = make_company()
    expires_at = NOW + timedelta(days=3)
    project = make_project(company, expires_at)

    assert warn() == 1
    assert warn() == 0
    assert warn(NOW + timedelta(hours=5)) == 0

    [warning] = notifications()
    assert warning.notification_type == "expiry_warning"
    assert warning.project_id == project and warning.company_id == company
    assert warning.dedupe_key == expiry.dedupe_key("expiry_warning", project, expires_at)
    # The facts of the event, and no words: those come from the templates.
    assert warning.payload == {
        "language": "en",
        "company_name": "Studio en",
        "project_name": "Wedding album",
        "expires_at": "2027-03-13T12:00:00+00:00",
        "content_title": None,
        "portrait_id": None,
        "reason": None,
    }
    words = words_of(warning)
    assert words.subject == 'Project "Wedding album" expires on 13 March 2027'
    assert "(in 3 days)" in words.text and "renew the project" in words.text


def test_projects_outside_their_window_are_not_warned(arv_env: dict[str, str]) -> None:
    company = make_company()
    make_project(company, NOW + timedelta(days=8))  # window of 7 days not open yet
    make_project(company, NOW + timedelta(days=20), notify_days=14)
    make_project(company, NOW + timedelta(days=1), notify_days=0)  # the company asked for no warning
    make_project(company, None)  # never expires
    make_project(company, NOW - timedelta(hours=1))  # already past: the expired notice covers it
    make_project(company, NOW + timedelta(days=2), status="expired")

    assert warn() == 0
    # Each window opens at expires_at minus its own number of days.
    assert warn(NOW + timedelta(days=1, seconds=1)) == 1
    assert warn(NOW + timedelta(days=6, seconds=1)) == 1


def test_renewal_allows_a_warning_for_the_new_expiry_date(arv_env: dict[str, str]) -> None:
    company = make_company()
    project = make_project(company, NOW + timedelta(days=2))
    assert warn() == 1
    renewed = NOW + timedelta(days=30)
    with session_scope() as session:
        session.get_one(Project, project).expires_at = renewed
    assert warn() == 0
    assert warn(renewed - timedelta(days=6)) == 1
    assert warn(renewed - timedelta(days=5)) == 0
    keys = [n.dedupe_key for n in notifications("expiry_warning")]
    assert keys == [
        expiry.dedupe_key("expiry_warning", project, NOW + timedelta(days=2)),
        expiry.dedupe_key("expiry_warning", project, renewed),
    ]


def test_warning_is_written_in_the_company_language(arv_env: dict[str, str]) -> None:
    make_project(make_company("ru"), NOW + timedelta(days=1), name="Выпускной")
    assert warn() == 1
    [warning] = notifications()
    assert warning.payload["language"] == "ru"
    words = words_of(warning)
    assert words.subject == "Срок проекта «Выпускной» истекает 11 марта 2027"
    assert "(через 1 день)" in words.text


def test_expired_project_is_expired_and_its_content_deactivated_once(arv_env: dict[str, str]) -> None:
    company = make_company()
    past = make_project(company, NOW - timedelta(minutes=1), contents=2)
    current = make_project(company, NOW + timedelta(days=1))
    forever = make_project(company, None)

    first = expire()
    assert first.to_dict() == {
        "projects_expired": 1,
        "contents_deactivated": 2,
        "expired_notifications_created": 1,
        "projects_reactivated": 0,
        "contents_reactivated": 0,
    }
    assert expire().to_dict() == dict.fromkeys(first.to_dict(), 0)
    assert project_state(past) == ("expired", [False, False])
    assert project_state(current) == ("active", [True])
    assert project_state(forever) == ("active", [True])
    [notice] = notifications("expired")
    assert notice.project_id == past
    assert words_of(notice).subject == 'Project "Wedding album" has expired'
    assert "expired on 10 March 2027" in words_of(notice).text
    assert notice.dedupe_key == expiry.dedupe_key("expired", past, NOW - timedelta(minutes=1))


def test_renewed_project_plays_again_and_notifies_again_at_its_new_expiry(arv_env: dict[str, str]) -> None:
    company = make_company()
    project = make_project(company, NOW - timedelta(days=1), contents=2)
    expire()
    assert project_state(project) == ("expired", [False, False])

    renewed = NOW + timedelta(days=365)
    with session_scope() as session:
        session.get_one(Project, project).expires_at = renewed
    result = expire(NOW + timedelta(minutes=5))
    assert (result.projects_reactivated, result.contents_reactivated, result.projects_expired) == (1, 2, 0)
    assert project_state(project) == ("active", [True, True])

    later = expire(renewed + timedelta(seconds=1))
    assert (later.projects_expired, later.expired_notifications_created) == (1, 1)
    assert len(notifications("expired")) == 2


def test_renewal_to_no_expiry_date_reactivates(arv_env: dict[str, str]) -> None:
    project = make_project(make_company(), NOW - timedelta(days=1))
    expire()
    with session_scope() as session:
        session.get_one(Project, project).expires_at = None
    assert expire().projects_reactivated == 1
    assert project_state(project) == ("active", [True])


def _run_together(target, workers: int = 2) -> list[object]:  # type: ignore[no-untyped-def]
    """Run `target` in `workers` threads released at the same instant; their results."""
    start = threading.Barrier(workers)
    results: list[object] = [None] * workers
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        try:
            start.wait()
            results[slot] = target()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_two_workers_expiring_at_once_change_each_row_once(arv_env: dict[str, str]) -> None:
    company = make_company()
    projects = [make_project(company, NOW - timedelta(seconds=i + 1)) for i in range(150)]

    results = _run_together(expire)

    assert sum(r.projects_expired for r in results) == 150  # type: ignore[attr-defined]
    assert sum(r.contents_deactivated for r in results) == 150  # type: ignore[attr-defined]
    assert sum(r.expired_notifications_created for r in results) == 150  # type: ignore[attr-defined]
    assert len(notifications("expired")) == 150
    assert all(project_state(p) == ("expired", [False]) for p in projects)


def test_two_workers_warning_at_once_write_one_warning_per_project(arv_env: dict[str, str]) -> None:
    company = make_company()
    for i in range(150):
        make_project(company, NOW + timedelta(hours=i + 1))

    results = _run_together(warn)

    assert sum(results) == 150  # type: ignore[arg-type]
    with session_scope() as session:
        per_project = session.execute(
            select(Notification.project_id, func.count()).group_by(Notification.project_id)
        ).all()
    assert len(per_project) == 150 and {count for _, count in per_project} == {1}


def test_viewer_stops_at_expiry_and_plays_again_after_renewal(api, tenant) -> None:  # type: ignore[no-untyped-def]
    """Through the API: an expired project's content answers 404 `expired` on the public endpoint; renewing
    it with PATCH and the next pass make it play again."""
    created = api.post(
        "/api/projects",
        json={"name": "Anniversary", "expires_at": (utcnow() - timedelta(minutes=1)).isoformat()},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    project = created.json()["id"]
    with session_scope() as session:
        content = ARContent(
            company_id=tenant.company_id,
            project_id=project,
            title="Portrait",
            image_key="images/p.png",
            image_content_type="image/png",
            image_width=640,
            image_height=480,
            marker_status="ready",
            marker_key="markers/p.mind",
        )
        session.add(content)
        session.flush()
        video = Video(
            ar_content_id=content.id,
            storage_key="videos/v.mp4",
            content_type="video/mp4",
            size_bytes=1,
            rendition_status="ready",
            rendition_key="renditions/v.mp4",
        )
        session.add(video)
        session.flush()
        content.active_video_id = video.id
        unique_id = content.unique_id

    with session_scope() as session:
        assert expiry.deactivate_expired_content(session).contents_deactivated == 1
    gone = api.get(f"/api/ar/{unique_id}")
    assert gone.status_code == 404 and gone.json()["state"] == "expired"

    renewed = api.patch(
        f"/api/projects/{project}",
        json={"expires_at": (utcnow() + timedelta(days=30)).isoformat()},
        headers=tenant.headers,
    )
    assert renewed.status_code == 200, renewed.text
    with session_scope() as session:
        assert expiry.deactivate_expired_content(session).contents_reactivated == 1
    playing = api.get(f"/api/ar/{unique_id}")
    assert playing.status_code == 200, playing.text
    assert playing.json()["state"] == "active"
    assert api.get(f"/api/projects/{project}", headers=tenant.headers).json()["status"] == "active"
