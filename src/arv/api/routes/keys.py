"""API keys: a company lists, creates and revokes its own; the operator any company's, and admin keys."""

from fastapi import APIRouter, HTTPException, Response, status

from arv.api.deps import CurrentPrincipal, SessionDep, acting_company
from arv.api.paging import BeforeId, CompanyFilter
from arv.api.schemas import IdPath, KeyCreate, KeyCreated, KeyOut, PageLimit
from arv.db.models import ApiKey
from arv.services.auth import KeyNotFound, LastAdminKey, issue_key, list_keys, revoke_key

router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.get("", response_model=list[KeyOut])
def list_api_keys(
    session: SessionDep,
    principal: CurrentPrincipal,
    company_id: CompanyFilter = None,
    limit: PageLimit = 50,
    before_id: BeforeId = None,
) -> list[ApiKey]:
    """The caller's company's keys (the operator: every key), newest first, revoked ones included."""
    return list_keys(session, principal, company_id=company_id, before_id=before_id, limit=limit)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_api_key(body: KeyCreate, session: SessionDep, principal: CurrentPrincipal) -> KeyCreated:
    """A new key, shown in the answer this once. A company key makes keys for its own company; the
    operator's for any company (`company_id`), or another admin key (`admin: true`)."""
    if body.admin:
        if not principal.is_admin:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "only the operator's admin key may create admin keys"
            )
        issued = issue_key(session, admin=True, label=body.label)
    else:
        if principal.is_admin and body.company_id is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "name the company the key acts for with company_id, or send admin: true for an admin key",
            )
        company = acting_company(session, principal, body.company_id)
        issued = issue_key(session, company_id=company.id, label=body.label)
    session.commit()
    return KeyCreated.model_validate({**KeyOut.model_validate(issued.record).model_dump(), "key": issued.key})


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(key_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Revoke a key: it is refused (401) from the next request on. Revoking it again changes nothing;
    a key may revoke itself, except the last admin key that is not revoked (409)."""
    try:
        revoke_key(session, principal, key_id)
    except KeyNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except LastAdminKey as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
