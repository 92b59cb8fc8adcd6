"""Driving the web console over HTTP in tests: accounts with a password, signing in, form tokens."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from arv.db.models import UserRole
from arv.db.session import session_scope

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def make_user(email: str, *, company_id: int | None, role: UserRole, password: str = PASSWORD) -> int:
    """A console account with its password set, as its one-time link would have set it."""
    from arv.config import get_settings
    from arv.services import accounts

    with session_scope() as session:
        user = accounts.create_user(session, email=email, company_id=company_id, role=role)
        link = accounts.issue_link(session, user, purpose="invite", settings=get_settings())
        token = parse_qs(urlsplit(link).query)["token"][0]
        accounts.set_password(session, token, password)
        return user.id


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Sign `client` in through the sign-in form, as a browser would."""
    form = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def page_token(client: TestClient, path: str = "/console/") -> str:
    """The CSRF token of the signed-in session, read off one of its pages."""
    page = client.get(path, follow_redirects=False)
    assert page.status_code == 200, f"{path}: {page.status_code} (not signed in?)"
    return csrf_of(page.text)
