"""Typed dependencies every route signature names: the session, the caller, the storage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.types import Scope

from arv.config import Settings, get_settings
from arv.db.models import ARContent, Base, Company, Video
from arv.db.session import get_sessionmaker
from arv.services.auth import Principal, authenticate_key
from arv.storage import Storage, get_storage

# What a request is told when the database cannot be reached (the app's handler of DBAPIError, and
# the key's lookup before the body, which FastAPI's body reading would otherwise turn into a 400).
DATABASE_UNAVAILABLE = "the database is unavailable right now; nothing was saved, try again in a moment"
# Where the request's state keeps its caller once the key is looked up.
PRINCIPAL_STATE = "principal"

bearer = HTTPBearer(auto_error=False, description="An ARV API key: `Authorization: Bearer arv_...`")


def get_db() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def authenticate(scope: Scope, *, body_pending: bool = False) -> Principal:
    """The caller of this request, from its `Authorization` header, looked up once per request: the
    first lookup (before the body, or in `get_principal`) is kept in the request's state.

    `body_pending`: the refusal closes the connection, so that a body the client is still sending
    is never read."""
    state = scope.setdefault("state", {})
    principal = state.get(PRINCIPAL_STATE)
    if isinstance(principal, Principal):
        return principal
    headers = {"WWW-Authenticate": "Bearer"} | ({"Connection": "close"} if body_pending else {})
    scheme, _, key = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "send your API key as 'Authorization: Bearer KEY'", headers=headers
        )
    principal = authenticate_key(key.strip())
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "this API key is not valid (unknown or revoked)", headers=headers
        )
    state[PRINCIPAL_STATE] = principal
    return principal


def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller; a route that names this dependency is refused without a valid key before its body
    is read (`arv.api.authentication`). `_credentials` declares the scheme in the OpenAPI schema."""
    return authenticate(request.scope)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the operator's admin key")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]

M = TypeVar("M", bound=Base)


def get_owned(session: Session, principal: Principal, model: type[M], record_id: int, what: str) -> M:
    """The record if the caller may see it; another company's record is as absent as a missing one."""
    record = session.get(model, record_id)
    company_id = getattr(record, "company_id", None) if record is not None else None
    if record is None or company_id is None or not principal.may_act_for(company_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no {what} {record_id}")
    return record


def get_owned_video(
    session: Session, principal: Principal, content_id: int, video_id: int
) -> tuple[ARContent, Video]:
    """The AR content if the caller may see it, and its video `video_id`; 404 for either missing."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    video = session.get(Video, video_id)
    if video is None or video.ar_content_id != content.id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"there is no video {video_id} in AR content {content_id}"
        )
    return content, video


def acting_company(session: Session, principal: Principal, company_id: int | None) -> Company:
    """The company a write acts for: a company key's own, or the one an admin names."""
    if principal.is_admin:
        if company_id is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "an admin key must name the company with company_id"
            )
        target = company_id
    else:
        if company_id is not None and company_id != principal.company_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no company {company_id}")
        target = principal.company_id  # type: ignore[assignment]
    company = session.get(Company, target)
    if company is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no company {target}")
    return company
