"""The web console over HTTP: sign-in, sessions and their cookies, CSRF, tenant isolation, roles.

The pages run in a real browser in tests/test_console_browser.py; here each rule is checked at the
level of requests and answers, where a broken rule shows at once.
"""

from __future__ import annotations

import re
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from arv.api.app import create_app
from arv.db.models import ARContent, Project, SignInThrottle, UserRole, utcnow
from arv.db.session import session_scope
from tests.conftest import Tenant, apply_env
from tests.support.console import PASSWORD, csrf_of, make_user, page_token, sign_in
from tests.support.images import photo_jpeg
from tests.support.viewer import create_content

# SQLite unless the SQL itself is the point: the rules checked here are the same on both databases.
SQLITE = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)


def _set_cookies(response) -> dict[str, SimpleCookie]:  # type: ignore[no-untyped-def]
    found = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


def _session_cookie(client: TestClient) -> str | None:
    return client.cookies.get("arv_session", path="/console")


@SQLITE
def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    api: TestClient, tenant: Tenant
) -> None:
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    sign_in(api, "owner@studio.test")
    token = page_token(api)
    for sent in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        refused = api.post("/console/projects", data={"name": "Prints", **sent}, follow_redirects=False)
        assert refused.status_code == 403, refused.text
        assert "did not come from this site" in refused.text
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 0
    # The console's script sends the token as a header instead.
    by_header = api.post("/console/projects", data={"name": "Prints"}, headers={"X-CSRF-Token": token},
                         follow_redirects=False)  # fmt: skip
    assert by_header.status_code == 303
    done = api.post("/console/projects", data={"name": "More", "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/console/projects/")
    # Before sign-in too: the sign-in form's token is the pre-session cookie's.
    fresh = TestClient(api.app)
    refused = fresh.post("/console/login", data={"email": "owner@studio.test", "password": PASSWORD})
    assert refused.status_code == 403


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


@SQLITE
def test_another_companys_user_gets_404_on_every_console_route_with_this_companys_ids(
    api: TestClient, make_tenant, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    ours: Tenant = make_tenant("Ours", contact_email="ours@studio.test")
    theirs: Tenant = make_tenant("Theirs")
    from tests.support.camera_feed import playable_video

    created = create_content(
        api, ours, photo_jpeg(320, 240), playable_video(tmp_path / "clip.webm", seconds=1)
    )
    [video] = api.get(f"/api/ar-content/{created['id']}/videos", headers=ours.headers).json()
    key = api.post("/api/keys", json={"label": "ours"}, headers=ours.headers).json()
    from arv.db.models import Notification

    with session_scope() as session:
        notification = Notification(
            company_id=ours.company_id, notification_type="marker_failed", subject="", message="",
            payload={}, dedupe_key="test-ours",
        )  # fmt: skip
        session.add(notification)
        session.flush()
        notification_id = notification.id
    ids = {
        "project_id": str(created["project_id"]),
        "content_id": str(created["id"]),
        "video_id": str(video["id"]),
        "key_id": str(key["id"]),
        "notification_id": str(notification_id),
        "company_id": str(ours.company_id),
        "size": "a4",
    }
    make_user("owner@ours.test", company_id=ours.company_id, role=UserRole.OWNER)
    make_user("owner@theirs.test", company_id=theirs.company_id, role=UserRole.OWNER)
    owner = TestClient(api.app)
    sign_in(owner, "owner@ours.test")
    sign_in(api, "owner@theirs.test")
    token = page_token(api)

    from arv.api.console import PARTS

    routes = [r for part in PARTS for r in part.routes if "{" in r.path]
    assert len(routes) >= 18, [r.path for r in routes]
    for route in routes:
        path = _fill(route.path, ids)
        for method in route.methods - {"HEAD"}:
            if method == "GET":
                answer = api.get(path, follow_redirects=False)
            else:
                answer = api.post(path, data={"csrf_token": token}, follow_redirects=False)
            assert answer.status_code == 404, f"{method} {path}: {answer.status_code} {answer.text[:300]}"
    # The same ids are this company's own: its pages answer (so the 404s above are about the company).
    own_pages = (
        "/console/projects/{project_id}",
        "/console/contents/{content_id}",
        "/console/contents/{content_id}/status",
        "/console/contents/{content_id}/print-{size}.pdf",
    )
    for path in own_pages:
        assert owner.get(_fill(path, ids)).status_code == 200, path
    # And the listings of the other company hold nothing of this one.
    for path in ("/console/", "/console/notifications", "/console/keys", "/console/settings"):
        page = api.get(path).text
        assert "Ours" not in page and "ours@" not in page and key["prefix"] not in page, path


@SQLITE
def test_the_session_id_changes_at_every_sign_in_and_the_old_one_stops_working(
    api: TestClient, tenant: Tenant
) -> None:
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    api.get("/console/login")
    assert _session_cookie(api) is None
    sign_in(api, "owner@studio.test")
    first = _session_cookie(api)
    assert first
    # Signing in again from the same browser (its token is the session's now): a new id.
    again = api.post("/console/login", data={"email": "owner@studio.test", "password": PASSWORD,
                     "csrf_token": page_token(api)}, follow_redirects=False)  # fmt: skip
    assert again.status_code == 303
    second = _session_cookie(api)
    assert second and second != first
    stale = TestClient(api.app, cookies={"arv_session": first})
    assert stale.get("/console/", follow_redirects=False).status_code == 303
    assert api.get("/console/", follow_redirects=False).status_code == 200
    # Signing out ends it on the server, not only in this browser.
    api.post("/console/logout", data={"csrf_token": page_token(api)})
    replay = TestClient(api.app, cookies={"arv_session": second})
    assert replay.get("/console/", follow_redirects=False).status_code == 303


@SQLITE
def test_failed_sign_ins_are_slowed_then_locked_even_for_the_right_password(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from arv.config import get_settings

    apply_env({**arv_env, "ARV_CONSOLE_SIGN_IN_DELAY_S": "0.05"}, monkeypatch)
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    limit = get_settings().console_sign_in_max_failures
    form = csrf_of(api.get("/console/login").text)
    for failure in range(1, limit):
        started = time.monotonic()
        wrong = api.post("/console/login", data={"email": "owner@studio.test", "password": "wrong password!",
                         "csrf_token": form})  # fmt: skip
        took = time.monotonic() - started
        assert wrong.status_code == 401 and "wrong e-mail or password" in wrong.text
        # Each answer waits longer than the one before: 0, then 0.05 s doubling.
        assert took >= (0.05 * 2 ** (failure - 2) if failure > 1 else 0), (failure, took)
    last = api.post("/console/login", data={"email": "owner@studio.test", "password": "wrong again!!",
                    "csrf_token": form})  # fmt: skip
    assert last.status_code == 429 and "too many failed sign-ins" in last.text
    locked = api.post("/console/login", data={"email": "OWNER@studio.test ", "password": PASSWORD,
                      "csrf_token": form}, follow_redirects=False)  # fmt: skip
    assert locked.status_code == 429, locked.text
    assert _session_cookie(api) is None
    # Once the lock has run out, the right password signs in.
    with session_scope() as session:
        session.execute(update(SignInThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
    sign_in(api, "owner@studio.test")
    assert _session_cookie(api)


@SQLITE
def test_cookies_are_httponly_samesite_lax_scoped_to_the_console_and_secure_behind_https(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    form = api.get("/console/login")
    anonymous = _set_cookies(form)["arv_csrf"]["arv_csrf"]
    signed_in = api.post("/console/login", data={"email": "owner@studio.test", "password": PASSWORD,
                         "csrf_token": csrf_of(form.text)}, follow_redirects=False)  # fmt: skip
    session_cookie = _set_cookies(signed_in)["arv_session"]["arv_session"]
    for cookie in (anonymous, session_cookie):
        assert cookie["httponly"] and cookie["samesite"].lower() == "lax" and cookie["path"] == "/console"
        assert not cookie["secure"], "plain HTTP on loopback: a Secure cookie would never come back"
    assert int(session_cookie["max-age"]) > 0

    apply_env({**arv_env, "ARV_PUBLIC_BASE_URL": "https://ar.studio.test"}, monkeypatch)
    with TestClient(create_app(), base_url="https://ar.studio.test") as secure:
        form = secure.get("/console/login")
        assert _set_cookies(form)["arv_csrf"]["arv_csrf"]["secure"]
        signed_in = secure.post("/console/login", data={"email": "owner@studio.test", "password": PASSWORD,
                                "csrf_token": csrf_of(form.text)}, follow_redirects=False)  # fmt: skip
        assert _set_cookies(signed_in)["arv_session"]["arv_session"]["secure"]


@SQLITE
def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in_and_back_but_never_off_site(
    api: TestClient, tenant: Tenant
) -> None:
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    away = api.get("/console/notifications", follow_redirects=False)
    assert (
        away.status_code == 303 and away.headers["location"] == "/console/login?next=/console/notifications"
    )
    form = csrf_of(api.get("/console/login").text)
    targets = (
        ("/console/notifications", "/console/notifications"),
        ("https://evil.test/", "/console/"),
        ("//evil.test/console/", "/console/"),
    )
    for target, lands in targets:
        answer = api.post("/console/login", data={"email": "owner@studio.test", "password": PASSWORD,
                          "csrf_token": form, "next": target}, follow_redirects=False)  # fmt: skip
        assert answer.headers["location"] == lands
        form = page_token(api)
    # An upload to the console without a session is refused before its body is read.
    stranger = TestClient(api.app)
    refused = stranger.post(
        "/console/projects/1/contents", files={"image": ("a.jpg", b"x" * 1000, "image/jpeg")}
    )
    assert refused.status_code == 401


@SQLITE
def test_keys_settings_and_the_team_are_the_owners_and_operator_pages_are_absent_for_studios(
    api: TestClient, tenant: Tenant
) -> None:
    make_user("member@studio.test", company_id=tenant.company_id, role=UserRole.MEMBER)
    sign_in(api, "member@studio.test")
    assert api.get("/console/").status_code == 200
    for path in ("/console/keys", "/console/settings"):
        assert api.get(path).status_code == 403, path
    for path in ("/console/companies", "/console/users", "/console/usage"):
        assert api.get(path).status_code == 404, path
    token = page_token(api)
    assert api.post("/console/team", data={"email": "x@studio.test", "csrf_token": token}).status_code == 403


@SQLITE
def test_an_upload_the_api_refuses_shows_its_reason_and_leaves_nothing_behind(
    api: TestClient, tenant: Tenant, arv_env: dict[str, str]
) -> None:
    from pathlib import Path

    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    sign_in(api, "owner@studio.test")
    token = page_token(api)
    project = api.post(
        "/console/projects", data={"name": "Prints", "csrf_token": token}, follow_redirects=False
    )
    path = project.headers["location"].split("?")[0]
    refused = api.post(
        f"{path}/contents",
        data={"title": "Not a photo", "csrf_token": token},
        files={"image": ("photo.jpg", b"%PDF-1.4 not an image", "image/jpeg")},
    )
    assert refused.status_code in (415, 422), refused.text
    assert "Not a photo" in refused.text  # the form is shown again, with what was typed
    scripted = api.post(
        f"{path}/contents", data={"title": "Not a photo", "csrf_token": token},
        files={"image": ("photo.jpg", b"%PDF-1.4 not an image", "image/jpeg")},
        headers={"X-ARV-Console": "1"},
    )  # fmt: skip
    assert scripted.status_code == refused.status_code and scripted.json()["detail"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ARContent)) == 0
    storage = Path(arv_env["ARV_DATA_DIR"]) / "storage"
    assert not [p for p in storage.rglob("*") if p.is_file()] if storage.exists() else True


@SQLITE
def test_the_operator_creates_a_company_and_invites_its_owner_whose_link_works_once(
    api: TestClient, arv_env: dict[str, str]
) -> None:
    make_user("operator@arv.test", company_id=None, role=UserRole.OPERATOR)
    sign_in(api, "operator@arv.test")
    assert api.get("/console/", follow_redirects=False).headers["location"] == "/console/companies"
    token = page_token(api, "/console/companies")
    created = api.post("/console/companies", data={"name": "Фотостудия", "contact_email": "info@foto.test",
                       "language": "ru", "csrf_token": token})  # fmt: skip
    assert created.status_code == 200 and "Фотостудия" in created.text
    with session_scope() as session:
        from arv.db.models import Company

        company_id = session.scalars(select(Company.id)).one()
    # No SMTP on this server: the page hands the link over instead of mailing it.
    invited = api.post(
        f"/console/companies/{company_id}/invite", data={"email": "owner@foto.test", "csrf_token": token}
    )
    assert invited.status_code == 200
    link = re.search(r'id="invite-link" readonly value="([^"]+)"', invited.text)
    assert link, invited.text
    owner = TestClient(api.app)
    path = link.group(1).split("testserver", 1)[1].replace("&amp;", "&")
    form = owner.get(path)
    assert form.status_code == 200 and "owner@foto.test" in form.text
    done = owner.post("/console/set-password", data={"token": path.split("token=")[1], "password": PASSWORD,
                      "csrf_token": csrf_of(form.text)}, follow_redirects=False)  # fmt: skip
    assert done.status_code == 303
    home = owner.get(done.headers["location"])
    assert home.status_code == 200 and "Проекты" in home.text  # the company's language
    again = TestClient(api.app).get(path)
    assert again.status_code == 404


@SQLITE
def test_the_content_page_shows_the_marker_s_quality_and_its_forms_act_through_the_api(
    api: TestClient, tenant: Tenant, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tests.support.camera_feed import playable_video
    from tests.support.pipeline import target_photo
    from tests.support.viewer import run_queued

    created = create_content(api, tenant, target_photo(), playable_video(tmp_path / "a.webm", seconds=1))
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    sign_in(api, "owner@studio.test")
    page = f"/console/contents/{created['id']}"
    waiting = api.get(page)
    assert 'data-marker-status="pending"' in waiting.text and "quality picture appears" in waiting.text
    status = api.get(f"{page}/status").json()
    assert status["marker_status"] == "pending" and not status["settled"]
    assert api.get(f"{page}/quality.png").status_code == 404

    run_queued("generate_ar_content_marker_task")
    ready = api.get(page)
    assert 'data-marker-status="ready"' in ready.text
    assert "Good: phones will find this print easily." in ready.text
    assert re.search(r"Findability: [0-5] of 5 \(found in \d+% of the phone views simulated", ready.text)
    picture = api.get(f"{page}/quality.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert api.get(f"{page}/status").json()["settled"]
    for size in ("a4", "a5", "10x15"):
        sheet = api.get(f"{page}/print-{size}.pdf")
        assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF"), size
        assert "attachment" in sheet.headers["content-disposition"]
    assert api.get(f"{page}/print-a3.pdf").status_code == 404

    # A second video through the console's form, then chosen to play, then a rotation of both.
    token = page_token(api, page)
    second = playable_video(tmp_path / "b.webm", seconds=1)
    upload = {"video": ("b.webm", second, "video/webm")}
    added = api.post(f"{page}/videos", data={"csrf_token": token}, files=upload, follow_redirects=False)
    assert added.status_code == 303, added.text
    videos = api.get(f"/api/ar-content/{created['id']}/videos", headers=tenant.headers).json()
    newest = videos[0]["id"]
    chosen = api.post(f"{page}/active-video", data={"video_id": str(newest), "csrf_token": token})
    assert chosen.status_code == 200
    assert (
        api.get(f"/api/ar-content/{created['id']}", headers=tenant.headers).json()["active_video_id"]
        == newest
    )
    sequence = [str(v["id"]) for v in reversed(videos)]
    rotation = api.post(
        f"{page}/rotation",
        data={"rotation_type": "weekly", "time_of_day": "09:30", "day_of_week": "2", "day_of_month": "5",
              "timezone": "Europe/Moscow", "video_sequence": sequence, "csrf_token": token},
    )  # fmt: skip
    assert rotation.status_code == 200, rotation.text
    assert "Every Wednesday at 09:30 (Europe/Moscow)" in rotation.text
    assert rotation.text.count("UTC</li>") == 5  # the next five changes
    saved = api.get(f"/api/ar-content/{created['id']}/rotation", headers=tenant.headers).json()
    assert saved["rotation_type"] == "weekly" and saved["day_of_week"] == 2 and saved["day_of_month"] is None
    # A rule the API refuses is shown with its reason, and nothing changes.
    refused = api.post(f"{page}/rotation", data={"rotation_type": "cron", "cron_expression": "61 * * * *",
                       "timezone": "UTC", "video_sequence": sequence, "csrf_token": token})  # fmt: skip
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    assert (
        api.get(f"/api/ar-content/{created['id']}/rotation", headers=tenant.headers).json()["rotation_type"]
        == "weekly"
    )
    stopped = api.post(f"{page}/rotation/stop", data={"csrf_token": token})
    assert stopped.status_code == 200 and "No rotation" in stopped.text
    recompiled = api.post(f"{page}/recompile", data={"csrf_token": token})
    assert recompiled.status_code == 200 and "being compiled again" in recompiled.text


@SQLITE
def test_an_owner_makes_and_revokes_keys_sets_the_company_s_channels_and_invites_the_team(
    api: TestClient, tenant: Tenant
) -> None:
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    sign_in(api, "owner@studio.test")
    token = page_token(api, "/console/keys")
    made = api.post("/console/keys", data={"label": "shop laptop", "csrf_token": token})
    assert made.status_code == 201
    key = re.search(r'id="new-key" readonly value="(arv_[^"]+)"', made.text).group(1)  # type: ignore[union-attr]
    assert "no-store" in made.headers["cache-control"]
    assert api.get("/api/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    key_id = api.get("/api/keys", headers={"Authorization": f"Bearer {key}"}).json()[0]["id"]
    assert key not in api.get("/console/keys").text  # shown once
    api.post(f"/console/keys/{key_id}/revoke", data={"csrf_token": token})
    assert api.get("/api/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 401

    channels = {"contact_email": "desk@studio.test", "telegram_chat_id": "-100123", "language": "ru"}
    saved = api.post("/console/settings", data={**channels, "csrf_token": token}, follow_redirects=False)
    assert saved.status_code == 303
    company = api.get(f"/api/companies/{tenant.company_id}", headers=tenant.headers).json()
    assert (company["contact_email"], company["telegram_chat_id"], company["language"]) == (
        "desk@studio.test", "-100123", "ru",
    )  # fmt: skip
    assert "Настройки" in api.get("/console/settings").text  # the pages follow the company's language
    refused = api.post("/console/settings", data={"contact_email": "not an address", "language": "ru",
                       "csrf_token": token})  # fmt: skip
    assert refused.status_code == 422 and "e-mail address" in refused.text
    emptied = {"contact_email": "", "telegram_chat_id": "", "language": "en", "csrf_token": token}
    cleared = api.post("/console/settings", data=emptied, follow_redirects=False)
    assert cleared.status_code == 303
    company = api.get(f"/api/companies/{tenant.company_id}", headers=tenant.headers).json()
    assert company["contact_email"] is None and company["telegram_chat_id"] is None

    invited = api.post("/console/team", data={"email": "Mia@Studio.test", "csrf_token": token})
    assert (
        invited.status_code == 200
        and "mia@studio.test" in invited.text
        and 'id="invite-link"' in invited.text
    )
    again = api.post("/console/team", data={"email": "mia@studio.test", "csrf_token": token})
    assert again.status_code == 422 and "already" in again.text


@SQLITE
def test_the_api_chooses_a_content_s_video_and_a_company_sets_its_own_channels(
    api: TestClient, make_tenant
) -> None:  # type: ignore[no-untyped-def]
    from tests.support.records import make_content

    ours: Tenant = make_tenant("Ours")
    theirs: Tenant = make_tenant("Theirs")
    content_id, videos = make_content(ours.company_id, 2)
    other_id, other_videos = make_content(theirs.company_id, 1)
    chosen = api.patch(
        f"/api/ar-content/{content_id}", json={"active_video_id": videos[1]}, headers=ours.headers
    )
    assert chosen.status_code == 200 and chosen.json()["active_video_id"] == videos[1]
    foreign = api.patch(f"/api/ar-content/{content_id}", json={"active_video_id": other_videos[0]},
                        headers=ours.headers)  # fmt: skip
    assert foreign.status_code == 422 and "is not a video of AR content" in foreign.json()["detail"]
    assert (
        api.patch(f"/api/ar-content/{other_id}", json={"title": "x"}, headers=ours.headers).status_code == 404
    )
    assert (
        api.patch(f"/api/ar-content/{content_id}", json={"title": None}, headers=ours.headers).status_code
        == 422
    )
    settings = api.patch(
        f"/api/companies/{ours.company_id}/settings", json={"language": "ru"}, headers=ours.headers
    )
    assert settings.status_code == 200 and settings.json()["language"] == "ru"
    assert api.patch(f"/api/companies/{theirs.company_id}/settings", json={"language": "ru"},
                     headers=ours.headers).status_code == 404  # fmt: skip
    quotas = api.patch(
        f"/api/companies/{ours.company_id}/settings", json={"quota_stored_bytes": 1}, headers=ours.headers
    )
    assert quotas.status_code == 422  # quotas are the operator's (PATCH /api/companies/{id})


def test_ids_no_database_holds_are_a_page_saying_so_not_a_database_error(
    api: TestClient, tenant: Tenant
) -> None:
    make_user("owner@studio.test", company_id=tenant.company_id, role=UserRole.OWNER)
    sign_in(api, "owner@studio.test")
    token = page_token(api)
    for path in (
        "/console/projects/99999999999999999999",
        "/console/contents/0",
        "/console/contents/-1/status",
    ):
        answer = api.get(path)
        assert answer.status_code == 422, (path, answer.status_code)
    page = api.get("/console/projects/2147483648")
    assert page.headers["content-type"].startswith("text/html") and "less than or equal" in page.text
    posted = api.post("/console/keys/99999999999999999999/revoke", data={"csrf_token": token})
    assert posted.status_code == 422
    assert api.get("/console/projects/2147483647").status_code == 404
