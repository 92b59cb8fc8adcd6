"""A studio's other pages: its notifications (resend what failed), its API keys, its settings and
team. Keys, settings and the team are the owner's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from arv.api.console.forms import FormRefused, body, refusal
from arv.api.console.pages import render
from arv.api.console.visitors import CsrfChecked, CurrentVisitor, OwnerVisitor, Visitor
from arv.api.deps import SessionDep, SettingsDep
from arv.api.routes import companies as companies_api
from arv.api.routes import keys as keys_api
from arv.api.routes import notifications as notifications_api
from arv.api.schemas import CompanySettingsUpdate, IdPath, KeyCreate
from arv.db.models import Company, DeliveryStatus, UserRole
from arv.services import accounts

router = APIRouter(prefix="/console", include_in_schema=False)

# Notifications on one page, newest first.
NOTIFICATIONS_SHOWN = 100


# ---- notifications --------------------------------------------------------------------------------


def _notifications_page(
    request: Request, session: Session, visitor: Visitor, *, error: str | None = None, code: int = 200
) -> Response:
    listed = notifications_api.list_notifications(
        session, visitor.principal, status_=None, notification_type=None, company_id=None,
        limit=NOTIFICATIONS_SHOWN, offset=0, before_id=None,
    )  # fmt: skip
    items = [
        {**n.model_dump(), "failed": any(d.status == DeliveryStatus.FAILED for d in n.deliveries)}
        for n in listed
    ]
    return render(request, "notifications.html", visitor, status_code=code, notifications=items, error=error)


@router.get("/notifications", response_class=HTMLResponse)
def notifications(request: Request, session: SessionDep, visitor: CurrentVisitor) -> Response:
    return _notifications_page(request, session, visitor)


@router.post("/notifications/{notification_id}/resend", dependencies=[CsrfChecked])
def resend(
    request: Request, notification_id: IdPath, session: SessionDep, visitor: CurrentVisitor
) -> Response:
    try:
        notifications_api.resend_notification(notification_id, session, visitor.principal)
    except HTTPException as exc:
        sentence, code = refusal(session, exc)
        return _notifications_page(request, session, visitor, error=sentence, code=code)
    return RedirectResponse("/console/notifications?done=resent", status_code=303)


# ---- API keys -------------------------------------------------------------------------------------


def _keys_page(
    request: Request,
    session: Session,
    visitor: Visitor,
    *,
    new_key: str | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    keys = keys_api.list_api_keys(session, visitor.principal, company_id=None, limit=200, before_id=None)
    return render(request, "keys.html", visitor, status_code=code, keys=keys, new_key=new_key, error=error)


@router.get("/keys", response_class=HTMLResponse)
def keys(request: Request, session: SessionDep, visitor: OwnerVisitor) -> Response:
    return _keys_page(request, session, visitor)


@router.post("/keys", response_class=HTMLResponse, dependencies=[CsrfChecked])
def create_key(
    request: Request, session: SessionDep, visitor: OwnerVisitor, label: Annotated[str, Form()] = ""
) -> Response:
    """A new key for the company, shown on the page this once (the answer is never cached)."""
    try:
        created = keys_api.create_api_key(
            body(KeyCreate, label=label or None, company_id=visitor.company_id), session, visitor.principal
        )
    except (FormRefused, HTTPException) as exc:
        sentence, code = refusal(session, exc)
        return _keys_page(request, session, visitor, error=sentence, code=code)
    return _keys_page(request, session, visitor, new_key=created.key, code=status.HTTP_201_CREATED)


@router.post("/keys/{key_id}/revoke", dependencies=[CsrfChecked])
def revoke_key(request: Request, key_id: IdPath, session: SessionDep, visitor: OwnerVisitor) -> Response:
    try:
        keys_api.revoke_api_key(key_id, session, visitor.principal)
    except HTTPException as exc:
        sentence, code = refusal(session, exc)
        return _keys_page(request, session, visitor, error=sentence, code=code)
    return RedirectResponse("/console/keys?done=key_revoked", status_code=303)


# ---- company settings and team ---------------------------------------------------------------------


def _company(session: Session, visitor: Visitor) -> Company:
    if visitor.company_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the operator has no company settings")
    return companies_api.read_company(visitor.company_id, session, visitor.principal)


def settings_page(
    request: Request,
    session: Session,
    visitor: Visitor,
    *,
    invited: dict[str, str | None] | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    company = _company(session, visitor)
    users = accounts.list_users(session, visitor.principal)
    return render(request, "settings.html", visitor, status_code=code, company=company, users=users,
                  invited=invited, error=error)  # fmt: skip


@router.get("/settings", response_class=HTMLResponse)
def company_settings(request: Request, session: SessionDep, visitor: OwnerVisitor) -> Response:
    return settings_page(request, session, visitor)


@router.post("/settings", dependencies=[CsrfChecked])
def save_settings(
    request: Request,
    session: SessionDep,
    visitor: OwnerVisitor,
    contact_email: Annotated[str, Form()] = "",
    telegram_chat_id: Annotated[str, Form()] = "",
    language: Annotated[str, Form()] = "en",
) -> Response:
    """Save the settings; an emptied field clears its value (no e-mail, no Telegram)."""
    company = _company(session, visitor)
    try:
        change = body(CompanySettingsUpdate, language=language)
        sent = body(
            CompanySettingsUpdate,
            contact_email=contact_email or None,
            telegram_chat_id=telegram_chat_id or None,
        )
        change.contact_email, change.telegram_chat_id = sent.contact_email, sent.telegram_chat_id
        companies_api.update_company_settings(company.id, change, session, visitor.principal)
    except (FormRefused, HTTPException) as exc:
        sentence, code = refusal(session, exc)
        return settings_page(request, session, visitor, error=sentence, code=code)
    return RedirectResponse("/console/settings?done=saved", status_code=303)


def invite(
    session: Session, *, email: str, company_id: int, role: UserRole, settings: SettingsDep
) -> dict[str, str | None]:
    """Make the account and send its invitation (or hand back the link when no e-mail is set up);
    raises FormRefused with the reason."""
    try:
        user, link = accounts.invite_user(session, email=email, company_id=company_id, role=role,
                                          settings=settings)  # fmt: skip
    except (accounts.AccountError, LookupError) as exc:
        raise FormRefused(str(exc)) from None
    session.commit()
    return {"email": user.email, "link": link}


@router.post("/team", response_class=HTMLResponse, dependencies=[CsrfChecked])
def invite_member(
    request: Request,
    session: SessionDep,
    visitor: OwnerVisitor,
    settings: SettingsDep,
    email: Annotated[str, Form()] = "",
    owner: Annotated[str, Form()] = "",
) -> Response:
    company = _company(session, visitor)
    role = UserRole.OWNER if owner else UserRole.MEMBER
    try:
        invited = invite(session, email=email, company_id=company.id, role=role, settings=settings)
    except FormRefused as exc:
        sentence, code = refusal(session, exc)
        return settings_page(request, session, visitor, error=sentence, code=code)
    return settings_page(request, session, visitor, invited=invited)


def company_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Company.id, Company.name)).tuples().all())
