"""PUT/GET/DELETE /api/ar-content/{id}/rotation: schedules of a company's own content and videos only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from arv.db.models import VideoRotationSchedule
from arv.db.session import session_scope
from arv.services.rotation import rotate_scheduled_videos
from tests.support.records import make_content


def test_company_sets_reads_and_stops_a_rotation_schedule(api: TestClient, tenant) -> None:  # type: ignore[no-untyped-def]
    content, videos = make_content(tenant.company_id, 3)
    body = {
        "rotation_type": "weekly",
        "day_of_week": 4,
        "time_of_day": "18:30",
        "timezone": "Europe/Moscow",
        "video_sequence": [videos[2], videos[0]],
    }
    put = api.put(f"/api/ar-content/{content}/rotation", json=body, headers=tenant.headers)
    assert put.status_code == 200, put.text
    schedule = put.json()
    assert schedule["video_sequence"] == [videos[2], videos[0]]
    assert schedule["current_index"] == 1 and schedule["active_video_id"] == videos[0]
    upcoming = datetime.fromisoformat(schedule["next_rotation_at"])
    assert upcoming > datetime.now(UTC)
    local = upcoming.astimezone(ZoneInfo("Europe/Moscow"))
    assert (local.weekday(), local.hour, local.minute) == (4, 18, 30)
    assert schedule["description"] == "Every Friday at 18:30 (Europe/Moscow)"

    read = api.get(f"/api/ar-content/{content}/rotation", headers=tenant.headers)
    assert read.status_code == 200 and read.json() == schedule

    stop = api.delete(f"/api/ar-content/{content}/rotation", headers=tenant.headers)
    assert stop.status_code == 204
    gone = api.get(f"/api/ar-content/{content}/rotation", headers=tenant.headers)
    assert gone.status_code == 404 and "has no rotation schedule" in gone.json()["detail"]
    with session_scope() as session:
        assert session.scalars(select(VideoRotationSchedule)).all() == []


def test_put_replaces_the_schedule_and_the_pass_rotates_it(api: TestClient, tenant) -> None:  # type: ignore[no-untyped-def]
    content, videos = make_content(tenant.company_id, 2)
    url = f"/api/ar-content/{content}/rotation"
    api.put(url, json={"rotation_type": "daily", "video_sequence": videos}, headers=tenant.headers)
    replaced = api.put(
        url,
        json={"rotation_type": "cron", "cron_expression": "*/5 * * * *", "video_sequence": videos},
        headers=tenant.headers,
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["time_of_day"] is None and replaced.json()["cron_expression"] == "*/5 * * * *"
    upcoming = datetime.fromisoformat(replaced.json()["next_rotation_at"])
    assert upcoming.minute % 5 == 0 and upcoming - datetime.now(UTC) <= timedelta(minutes=5)

    with session_scope() as session:
        assert rotate_scheduled_videos(session, now=upcoming).rotated == 1
    after = api.get(url, headers=tenant.headers).json()
    assert after["active_video_id"] == videos[1] and after["current_index"] == 1
    assert datetime.fromisoformat(after["last_rotated_at"]) == upcoming
    assert datetime.fromisoformat(after["next_rotation_at"]) == upcoming + timedelta(minutes=5)


def test_videos_of_other_content_are_refused(api: TestClient, tenant) -> None:  # type: ignore[no-untyped-def]
    content, videos = make_content(tenant.company_id, 1)
    _, elsewhere = make_content(tenant.company_id, 1)
    response = api.put(
        f"/api/ar-content/{content}/rotation",
        json={"rotation_type": "daily", "video_sequence": [videos[0], elsewhere[0], 999_999]},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"videos {elsewhere[0]}, 999999, which are not a video of AR content {content}" in detail
    with session_scope() as session:
        assert session.scalars(select(VideoRotationSchedule)).all() == []


def test_unusable_schedules_are_refused_with_a_sentence(api: TestClient, tenant) -> None:  # type: ignore[no-untyped-def]
    content, videos = make_content(tenant.company_id, 2)
    url = f"/api/ar-content/{content}/rotation"
    cases = [
        ({"rotation_type": "hourly"}, "rotation_type must be one of daily, weekly, monthly, cron, random"),
        ({"rotation_type": "weekly"}, "a weekly schedule needs day_of_week from 0 (Monday) to 6 (Sunday)"),
        ({"rotation_type": "daily", "time_of_day": "9.30"}, "time_of_day must be HH:MM"),
        ({"rotation_type": "daily", "timezone": "Moscow"}, "timezone 'Moscow' is not a known IANA time zone"),
        (
            {"rotation_type": "cron", "cron_expression": "every day"},
            "is not a cron expression of five fields",
        ),
        ({"rotation_type": "daily", "video_sequence": []}, "video_sequence needs at least one id"),
    ]
    for fields, sentence in cases:
        response = api.put(url, json={"video_sequence": videos, **fields}, headers=tenant.headers)
        assert response.status_code == 422, (fields, response.text)
        assert sentence in response.json()["detail"], (fields, response.json())


def test_other_companies_content_is_not_found(api: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    owner = make_tenant("Owner Studio")
    stranger = make_tenant("Other Studio")
    content, videos = make_content(owner.company_id, 2)
    url = f"/api/ar-content/{content}/rotation"
    assert api.put(
        url, json={"rotation_type": "daily", "video_sequence": videos}, headers=owner.headers
    ).is_success
    body = {"rotation_type": "daily", "video_sequence": videos}
    for response in (
        api.put(url, json=body, headers=stranger.headers),
        api.get(url, headers=stranger.headers),
        api.delete(url, headers=stranger.headers),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == f"there is no AR content {content}"
    assert api.get(url, headers=owner.headers).status_code == 200
    assert api.get(url).status_code == 401
