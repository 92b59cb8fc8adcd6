"""Companies: created by the operator; each company reads its own."""

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy.orm import Session

from arv.api.deps import AdminPrincipal, CurrentPrincipal, SessionDep, SettingsDep
from arv.api.schemas import (
    CompanyCreate,
    CompanyOut,
    CompanyQuotasUpdate,
    CompanySettingsUpdate,
    CompanyUsageOut,
    IdPath,
    QuotaUsageOut,
)
from arv.db.models import Company
from arv.services import deletion, quotas
from arv.services.auth import Principal

router = APIRouter(prefix="/api/companies", tags=["companies"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CompanyOut)
def create_company(body: CompanyCreate, session: SessionDep, _admin: AdminPrincipal) -> Company:
    company = Company(**body.model_dump())
    session.add(company)
    session.commit()
    return company


def _visible_company(session: Session, principal: Principal, company_id: int) -> Company:
    """The company if the caller may see it: another company is as absent as a missing one."""
    company = session.get(Company, company_id)
    if company is None or not principal.may_act_for(company.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no company {company_id}")
    return company


@router.get("/{company_id}", response_model=CompanyOut)
def read_company(company_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Company:
    return _visible_company(session, principal, company_id)


@router.patch("/{company_id}", response_model=CompanyOut)
def update_company_quotas(
    company_id: IdPath, body: CompanyQuotasUpdate, session: SessionDep, admin: AdminPrincipal
) -> Company:
    """Set the company's own quotas (operator only): a number replaces the setting, null restores it."""
    company = _visible_company(session, admin, company_id)
    for field in body.model_fields_set:
        setattr(company, field, getattr(body, field))
    session.commit()
    return company


@router.patch("/{company_id}/settings", response_model=CompanyOut)
def update_company_settings(
    company_id: IdPath, body: CompanySettingsUpdate, session: SessionDep, principal: CurrentPrincipal
) -> Company:
    """A company's own settings (its key, or the operator's): the contact e-mail and Telegram chat
    its notifications go to, and its language."""
    company = _visible_company(session, principal, company_id)
    for field in body.model_fields_set:
        setattr(company, field, getattr(body, field))
    session.commit()
    return company


@router.get("/{company_id}/usage", response_model=CompanyUsageOut)
def read_company_usage(
    company_id: IdPath, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep
) -> CompanyUsageOut:
    """Each quota's limit for the company and its current use (uploads today, UTC)."""
    company = _visible_company(session, principal, company_id)
    used = {
        u.quota: QuotaUsageOut(limit=u.limit, used=u.used, overridden=u.overridden)
        for u in quotas.usage(session, company, settings)
    }
    return CompanyUsageOut(company_id=company.id, **used)


@router.delete("/{company_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_company(company_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """The operator only: delete the company with everything it has (keys, projects, portraits,
    notifications, jobs, stored files). Another company's key gets 404, the company's own 403."""
    company = _visible_company(session, principal, company_id)
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the operator's admin key can delete a company")
    deletion.delete_company(session, company)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
