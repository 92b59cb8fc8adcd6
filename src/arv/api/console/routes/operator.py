"""The operator's pages: companies (create one, invite its first owner), every console user, and
what each company uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arv.api.console.forms import FormRefused, body, refusal
from arv.api.console.pages import render
from arv.api.console.routes.studio import company_names, invite
from arv.api.console.visitors import CsrfChecked, OperatorVisitor, Visitor
from arv.api.deps import SessionDep, SettingsDep
from arv.api.routes import companies as companies_api
from arv.api.schemas import CompanyCreate, IdPath
from arv.db.models import ARContent, Company, ContentView, Project, UserRole, utcnow
from arv.services import accounts, quotas

router = APIRouter(prefix="/console", include_in_schema=False)


def _companies_page(
    request: Request,
    session: Session,
    visitor: Visitor,
    *,
    invited: dict[str, str | None] | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    companies = session.scalars(select(Company).order_by(Company.id.desc())).all()
    return render(request, "companies.html", visitor, status_code=code, companies=companies, invited=invited,
                  error=error)  # fmt: skip


@router.get("/companies", response_class=HTMLResponse)
def companies(request: Request, session: SessionDep, visitor: OperatorVisitor) -> Response:
    return _companies_page(request, session, visitor)


@router.post("/companies", dependencies=[CsrfChecked])
def create_company(
    request: Request,
    session: SessionDep,
    visitor: OperatorVisitor,
    name: Annotated[str, Form()] = "",
    contact_email: Annotated[str, Form()] = "",
    language: Annotated[str, Form()] = "en",
) -> Response:
    try:
        change = body(CompanyCreate, name=name, contact_email=contact_email or None, language=language)
        companies_api.create_company(change, session, visitor.principal)
    except (FormRefused, HTTPException) as exc:
        sentence, code = refusal(session, exc)
        return _companies_page(request, session, visitor, error=sentence, code=code)
    return RedirectResponse("/console/companies?done=company_created", status_code=303)


@router.post("/companies/{company_id}/invite", response_class=HTMLResponse, dependencies=[CsrfChecked])
def invite_owner(
    request: Request,
    company_id: IdPath,
    session: SessionDep,
    visitor: OperatorVisitor,
    settings: SettingsDep,
    email: Annotated[str, Form()] = "",
) -> Response:
    """Invite the company's (first) owner: an e-mail with a one-time link, or the link on the page."""
    companies_api.read_company(company_id, session, visitor.principal)  # 404 for a company not there
    try:
        invited = invite(session, email=email, company_id=company_id, role=UserRole.OWNER, settings=settings)
    except FormRefused as exc:
        sentence, code = refusal(session, exc)
        return _companies_page(request, session, visitor, error=sentence, code=code)
    return _companies_page(request, session, visitor, invited=invited)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, session: SessionDep, visitor: OperatorVisitor) -> Response:
    found = accounts.list_users(session, visitor.principal)
    return render(request, "users.html", visitor, users=found, company_names=company_names(session))


def _count_by_company(session: Session, model: type[Project] | type[ARContent]) -> dict[int, int]:
    return dict(
        session.execute(select(model.company_id, func.count()).group_by(model.company_id)).tuples().all()
    )


@router.get("/usage", response_class=HTMLResponse)
def usage(request: Request, session: SessionDep, visitor: OperatorVisitor, settings: SettingsDep) -> Response:
    """Per company: projects, contents, views in the last 30 days, and each quota's use."""
    projects = _count_by_company(session, Project)
    contents = _count_by_company(session, ARContent)
    since = (utcnow() - timedelta(days=30)).date()
    views = dict(
        session.execute(
            select(ARContent.company_id, func.coalesce(func.sum(ContentView.count), 0))
            .join(ContentView, ContentView.ar_content_id == ARContent.id)
            .where(ContentView.day >= since)
            .group_by(ARContent.company_id)
        ).tuples().all()
    )  # fmt: skip
    rows = []
    for company in session.scalars(select(Company).order_by(Company.name)):
        shown = [
            {
                "used_text": _amount(u.quota, u.used),
                "limit_text": "∞" if u.limit is None else _amount(u.quota, u.limit),
            }
            for u in quotas.usage(session, company, settings)
        ]
        rows.append({"company": company, "projects": projects.get(company.id, 0),
                     "contents": contents.get(company.id, 0), "views": views.get(company.id, 0),
                     "quotas": shown})  # fmt: skip
    return render(request, "usage.html", visitor, rows=rows, quota_names=[str(q) for q in quotas.QUOTAS])


def _amount(quota: str, amount: int) -> str:
    return f"{amount / (1024 * 1024):.1f} MB" if quota == quotas.STORED_BYTES else str(amount)
