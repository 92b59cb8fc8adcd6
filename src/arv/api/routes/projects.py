"""Projects: what a company buys, until `expires_at`."""

from fastapi import APIRouter, Response, status
from sqlalchemy import select

from arv.api.deps import CurrentPrincipal, SessionDep, SettingsDep, acting_company, get_owned
from arv.api.schemas import IdPath, IdQuery, PageLimit, PageOffset, ProjectCreate, ProjectOut, ProjectUpdate
from arv.db.models import Project
from arv.services import deletion

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectOut)
def create_project(
    body: ProjectCreate, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep
) -> Project:
    company = acting_company(session, principal, body.company_id)
    days = body.notify_before_expiry_days
    project = Project(
        company_id=company.id,
        name=body.name,
        expires_at=body.expires_at,
        status="active",
        notify_before_expiry_days=settings.default_notify_before_expiry_days if days is None else days,
    )
    session.add(project)
    session.commit()
    return project


@router.get("", response_model=list[ProjectOut])
def list_projects(
    session: SessionDep,
    principal: CurrentPrincipal,
    company_id: IdQuery = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> list[Project]:
    query = select(Project).order_by(Project.id.desc()).limit(limit).offset(offset)
    if not principal.is_admin:
        query = query.where(Project.company_id == principal.company_id)
    elif company_id is not None:
        query = query.where(Project.company_id == company_id)
    return list(session.scalars(query))


@router.get("/{project_id}", response_model=ProjectOut)
def read_project(project_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Project:
    return get_owned(session, principal, Project, project_id, "project")


@router.patch("/{project_id}", response_model=ProjectOut)
def update_project(
    project_id: IdPath, body: ProjectUpdate, session: SessionDep, principal: CurrentPrincipal
) -> Project:
    """Rename, or renew by moving `expires_at`; the next expiry pass reactivates renewed content."""
    project = get_owned(session, principal, Project, project_id, "project")
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(project, field, value)
    session.commit()
    return project


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(project_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete the project with all its AR content (videos, markers, previews, QR codes)."""
    project = get_owned(session, principal, Project, project_id, "project")
    deletion.delete_project(session, project)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
