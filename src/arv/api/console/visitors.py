"""Who is at the console: the session cookie, the CSRF token of every form, and the sign-in wall.

A signed-in person carries one cookie, `arv_session`, whose random value is looked up by its hash
(`services.accounts.resolve_session`); it is HttpOnly and SameSite=Lax, Secure when ARV is reached
over HTTPS, and scoped to `/console`. Each session has its own CSRF token, which every form that
changes something sends back (a hidden `csrf_token` field, or the `X-CSRF-Token` header of the
console's script); before sign-in, the forms (sign-in, set password, forgotten password) carry the
token of a pre-session cookie, `arv_csrf`, instead. A fresh session (and so a fresh id and token)
is made at every sign-in.

A console person acts through the same `Principal` as an API key: the operator as the admin key,
a studio's people as their company's key. Every record a page shows or a form changes is found
through the API's own lookups with that principal, so tenant isolation has one implementation.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response, status
from sqlalchemy.orm import Session
from starlette.types import Scope

from arv.config import Settings, get_settings
from arv.db.models import Company, ConsoleSession, User, UserRole
from arv.db.session import session_scope
from arv.services import accounts
from arv.services.auth import Principal
from arv.viewer.messages import pick_language

SESSION_COOKIE = "arv_session"
# The pre-session cookie whose value the anonymous forms carry as their CSRF token.
ANON_CSRF_COOKIE = "arv_csrf"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Where the request's state keeps the visitor once the cookie is looked up.
VISITOR_STATE = "console_visitor"


@dataclass(frozen=True)
class Visitor:
    """A signed-in person: their account, company (None for the operator), the principal they act
    as, their session's CSRF token and the language of their pages."""

    user_id: int
    email: str
    role: str
    company_id: int | None
    company_name: str | None
    language: str
    csrf_token: str
    principal: Principal

    @property
    def is_operator(self) -> bool:
        return self.role == UserRole.OPERATOR

    @property
    def is_owner(self) -> bool:
        return self.role == UserRole.OWNER


class SignInRequired(Exception):
    """No valid session: the page sends the person to the sign-in form (and back afterwards)."""

    def __init__(self, path: str) -> None:
        super().__init__("sign in to see this page")
        self.path = path


def login_location(path: str) -> str:
    return f"/console/login?next={quote(path, safe='/')}"


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether cookies get the Secure flag: when the person reached ARV over HTTPS (directly, or as
    the public address says, behind a proxy that ends TLS)."""
    return request.url.scheme == "https" or settings.public_base_url.startswith("https://")


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request, get_settings()),
    )


def _visitor(session: Session, user: User, row: ConsoleSession, accept_language: str | None) -> Visitor:
    company = session.get(Company, user.company_id) if user.company_id is not None else None
    return Visitor(
        user_id=user.id,
        email=user.email,
        role=user.role,
        company_id=user.company_id,
        company_name=company.name if company is not None else None,
        language=pick_language(company.language if company is not None else None, accept_language),
        csrf_token=row.csrf_token,
        principal=accounts.principal_for(user),
    )


def find_visitor(scope: Scope) -> Visitor | None:
    """The signed-in person of this request, looked up once per request (kept in its state)."""
    state = scope.setdefault("state", {})
    if VISITOR_STATE in state:
        return state[VISITOR_STATE]  # type: ignore[no-any-return]
    request = Request(scope)
    token = request.cookies.get(SESSION_COOKIE)
    visitor = None
    if token:
        with session_scope() as session:
            found = accounts.resolve_session(session, token)
            if found is not None:
                visitor = _visitor(session, *found, request.headers.get("accept-language"))
    state[VISITOR_STATE] = visitor
    return visitor


def authenticate_visitor(scope: Scope) -> None:
    """For `AuthenticateBeforeBody`: refuse an upload to the console before its body when nobody is
    signed in (raises 401 with `Connection: close`)."""
    if find_visitor(scope) is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "you are not signed in (or your session ended): sign in again, then send the form again",
            headers={"Connection": "close"},
        )


def optional_visitor(request: Request) -> Visitor | None:
    """The signed-in person, or None (a sync dependency: the lookup runs in a worker thread)."""
    return find_visitor(request.scope)


OptionalVisitor = Annotated[Visitor | None, Depends(optional_visitor)]


def current_visitor(request: Request, visitor: OptionalVisitor) -> Visitor:
    """The signed-in person; anyone else is sent to the sign-in form."""
    if visitor is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return visitor


CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]


def require_owner(visitor: CurrentVisitor) -> Visitor:
    """A company's owner (or the operator): keys, company settings and the team are theirs."""
    if not (visitor.is_owner or visitor.is_operator):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the company's owner can change this")
    return visitor


OwnerVisitor = Annotated[Visitor, Depends(require_owner)]


def require_operator(visitor: CurrentVisitor) -> Visitor:
    if not visitor.is_operator:
        # As absent as another company's page: a studio does not learn the operator's routes.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "there is no such page")
    return visitor


OperatorVisitor = Annotated[Visitor, Depends(require_operator)]


def anonymous_csrf_token(request: Request) -> str:
    """The pre-session token of this browser, or a new one (the caller sets the cookie)."""
    return request.cookies.get(ANON_CSRF_COOKIE) or secrets.token_urlsafe(24)


async def check_csrf(request: Request, visitor: OptionalVisitor) -> None:
    """Refuse (403) a form whose CSRF token is not this visitor's: the session's once signed in,
    the pre-session cookie's before. FastAPI parses the form once; this reads the parsed form."""
    expected = visitor.csrf_token if visitor is not None else request.cookies.get(ANON_CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this form has expired or did not come from this site: reload the page and send it again",
        )


CsrfChecked = Depends(check_csrf)
