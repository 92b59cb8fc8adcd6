"""Signing in and out, setting a password through a one-time link, asking for a new link."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from arv.api.console.pages import render
from arv.api.console.visitors import (
    SESSION_COOKIE,
    CsrfChecked,
    OptionalVisitor,
    set_cookie,
)
from arv.api.deps import SessionDep
from arv.config import get_settings
from arv.db.models import User
from arv.db.session import session_scope
from arv.services import accounts

router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page of this site, never another site."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _signed_in(request: Request, user_id: int, target: str) -> Response:
    """A new session for the person (a new id and CSRF token), the cookie, and the way on; the
    session the browser held before, if any, is ended."""
    settings = get_settings()
    with session_scope() as session:
        accounts.end_session(session, request.cookies.get(SESSION_COOKIE))
        user = session.get(User, user_id)
        assert user is not None
        token, _ = accounts.start_session(session, user, settings)
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_cookie(response, request, SESSION_COOKIE, token, max_age=int(settings.console_session_ttl_s))
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, visitor: OptionalVisitor, next: str | None = None) -> Response:
    if visitor is not None:
        return RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    return render(request, "login.html", None, next=_safe_next(next), email="", error=None)


def _try_sign_in(email: str, password: str) -> tuple[int | None, str | None, int]:
    """(user id, None, 303) or (None, the refusal, its status); the failure count is committed
    either way."""
    settings = get_settings()
    with session_scope() as session:
        try:
            user = accounts.sign_in(session, email, password, settings)
        except accounts.SignInLocked as exc:
            return None, str(exc), status.HTTP_429_TOO_MANY_REQUESTS
        except accounts.AccountError as exc:
            return None, str(exc), status.HTTP_401_UNAUTHORIZED
        return user.id, None, status.HTTP_303_SEE_OTHER


def _delay(email: str) -> float:
    with session_scope() as session:
        return accounts.sign_in_delay_s(session, email)


@router.post("/login", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Sign in. Each failed attempt for an e-mail slows the next answer for it, and enough of them
    lock it for a while (`services.accounts.sign_in`)."""
    # Waiting here holds no worker thread: the event loop sleeps, the lookups run in threads.
    await asyncio.sleep(await run_in_threadpool(_delay, email))
    user_id, refusal, code = await run_in_threadpool(_try_sign_in, email, password)
    if user_id is None:
        return render(request, "login.html", None, status_code=code, next=_safe_next(next), email=email,
                      error=refusal)  # fmt: skip
    return await run_in_threadpool(_signed_in, request, user_id, _safe_next(next))


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, session: SessionDep) -> Response:
    accounts.end_session(session, request.cookies.get(SESSION_COOKIE))
    session.commit()
    response = RedirectResponse("/console/login?done=signed_out", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/set-password", response_class=HTMLResponse)
def set_password_form(request: Request, session: SessionDep, token: str = "") -> Response:
    try:
        user = accounts.link_user(session, token)
    except accounts.LinkInvalid as exc:
        return render(request, "set_password.html", None, status_code=status.HTTP_404_NOT_FOUND,
                      token="", email="", error=str(exc))  # fmt: skip
    return render(request, "set_password.html", None, token=token, email=user.email, error=None)


@router.post("/set-password", response_class=HTMLResponse, dependencies=[CsrfChecked])
def set_password(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Set the password and sign in at once (a new session; every older one was ended)."""
    try:
        user = accounts.set_password(session, token, password)
    except accounts.LinkInvalid as exc:
        session.rollback()
        return render(request, "set_password.html", None, status_code=status.HTTP_404_NOT_FOUND,
                      token="", email="", error=str(exc))  # fmt: skip
    except accounts.AccountError as exc:
        session.rollback()
        email = accounts.link_user(session, token).email
        return render(request, "set_password.html", None, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                      token=token, email=email, error=str(exc))  # fmt: skip
    session.commit()
    return _signed_in(request, user.id, "/console/?done=password_set")


def _forgot_password_page(
    request: Request, *, sent: bool, error: str | None = None, code: int = 200
) -> Response:
    # Without e-mail on this server no link can be mailed: the page says who can make one.
    mail = bool(get_settings().smtp_host)
    return render(request, "forgot_password.html", None, status_code=code, sent=sent, error=error, mail=mail)


@router.get("/forgot-password", response_class=HTMLResponse)
def forgot_password_form(request: Request) -> Response:
    return _forgot_password_page(request, sent=False)


@router.post("/forgot-password", response_class=HTMLResponse, dependencies=[CsrfChecked])
def forgot_password(
    request: Request, session: SessionDep, email: Annotated[str, Form(max_length=320)] = ""
) -> Response:
    """Mail a reset link if the address has an account; the answer is the same either way."""
    try:
        accounts.request_password_reset(session, email, get_settings())
    except accounts.InvalidEmail as exc:
        return _forgot_password_page(request, sent=False, error=str(exc), code=422)
    session.commit()
    return _forgot_password_page(request, sent=True)
