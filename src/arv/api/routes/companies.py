"""Companies: created by the operator; each company reads its own."""

from fastapi import APIRouter, HTTPException, status

from arv.api.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from arv.api.schemas import CompanyCreate, CompanyOut, IdPath
from arv.db.models import Company

router = APIRouter(prefix="/api/companies", tags=["companies"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CompanyOut)
def create_company(body: CompanyCreate, session: SessionDep, _admin: AdminPrincipal) -> Company:
    company = Company(**body.model_dump())
    session.add(company)
    session.commit()
    return company


@router.get("/{company_id}", response_model=CompanyOut)
def read_company(company_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Company:
    company = session.get(Company, company_id)
    if company is None or not principal.may_act_for(company.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no company {company_id}")
    return company
