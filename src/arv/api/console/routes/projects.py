"""A studio's projects: the list with status and days to expiry, one project's contents, creating,
renaming and renewing, and the new-content upload."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select

from arv.api.console.forms import FormRefused, body, expiry_day, expiry_of, refusal, value
from arv.api.console.pages import render, words_for
from arv.api.console.visitors import CsrfChecked, CurrentVisitor, Visitor
from arv.api.console.words import Words
from arv.api.deps import SessionDep, SettingsDep, StorageDep, get_owned
from arv.api.routes import ar_content as ar_content_api
from arv.api.routes import projects as projects_api
from arv.api.schemas import IdPath, ProjectCreate, ProjectUpdate, Text200
from arv.db.models import ARContent, Project, utcnow
from arv.services.uploads import IMAGE_SUFFIXES
from arv.services.video_probe import VIDEO_CONTENT_TYPES

router = APIRouter(prefix="/console", include_in_schema=False)

# What the file pickers offer; the server checks the files themselves (services.uploads, video_probe).
IMAGE_TYPES = ",".join(IMAGE_SUFFIXES)
VIDEO_TYPES = ",".join(VIDEO_CONTENT_TYPES)
# The console's script asks for JSON answers to its uploads with this header.
SCRIPT_HEADER = "x-arv-console"


def expiry_words(project: Project, words: Words, now: datetime | None = None) -> str:
    """`expires in 5 days`, `expired`, `no expiry date`."""
    if project.expires_at is None:
        return words.no_expiry
    left = (project.expires_at - (now or utcnow())).total_seconds() / 86400
    if left <= 0 or project.status == "expired":
        return words.expired_on.format(date=expiry_day(project.expires_at))
    return words.days_left.format(days=math.ceil(left), date=expiry_day(project.expires_at))


def _projects_page(
    request: Request, session: SessionDep, visitor: Visitor, *, error: str | None = None, code: int = 200
) -> Response:
    words = words_for(request, visitor)
    counts = dict(
        session.execute(
            select(ARContent.project_id, func.count()).group_by(ARContent.project_id)
            .where(ARContent.company_id == visitor.company_id)
        ).all()
    )  # fmt: skip
    found = projects_api.list_projects(session, visitor.principal, company_id=None, limit=500, offset=0)
    rows = [{"project": p, "expiry": expiry_words(p, words), "contents": counts.get(p.id, 0)} for p in found]
    return render(request, "projects.html", visitor, status_code=code, projects=rows, error=error)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, visitor: CurrentVisitor) -> Response:
    """A studio's projects; the operator's home is the companies."""
    if visitor.is_operator:
        return RedirectResponse("/console/companies", status_code=status.HTTP_303_SEE_OTHER)
    return _projects_page(request, session, visitor)


@router.post("/projects", dependencies=[CsrfChecked])
def create_project(
    request: Request,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    name: Annotated[str, Form()] = "",
    expires_on: Annotated[str, Form()] = "",
) -> Response:
    try:
        created = projects_api.create_project(
            body(ProjectCreate, name=name, expires_at=expiry_of(expires_on)), session, visitor.principal,
            settings,
        )  # fmt: skip
    except (FormRefused, HTTPException) as exc:
        sentence, code = refusal(session, exc)
        return _projects_page(request, session, visitor, error=sentence, code=code)
    return RedirectResponse(f"/console/projects/{created.id}?done=project_created", status_code=303)


def project_page(
    request: Request,
    session: SessionDep,
    visitor: Visitor,
    settings: SettingsDep,
    project_id: int,
    *,
    error: str | None = None,
    code: int = 200,
    title: str = "",
) -> Response:
    """The project's page; after a refused upload, with the refusal and the title typed."""
    project = get_owned(session, visitor.principal, Project, project_id, "project")
    contents = session.scalars(
        select(ARContent).where(ARContent.project_id == project.id).order_by(ARContent.id.desc())
    ).all()
    return render(
        request,
        "project.html",
        visitor,
        status_code=code,
        project=project,
        expiry=expiry_words(project, words_for(request, visitor)),
        expires_on=expiry_day(project.expires_at),
        contents=contents,
        max_upload_bytes=settings.max_upload_bytes,
        image_types=IMAGE_TYPES,
        video_types=VIDEO_TYPES,
        error=error,
        title=title,
    )


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project(
    request: Request, project_id: IdPath, session: SessionDep, visitor: CurrentVisitor, settings: SettingsDep
) -> Response:
    return project_page(request, session, visitor, settings, project_id)


@router.post("/projects/{project_id}", dependencies=[CsrfChecked])
def update_project(
    request: Request,
    project_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    name: Annotated[str, Form()] = "",
    expires_on: Annotated[str, Form()] = "",
) -> Response:
    """Rename, and set or clear the expiry (an empty date removes it)."""
    try:
        change = body(ProjectUpdate, name=name)
        change.expires_at = expiry_of(expires_on)  # sent as null when empty: the expiry is removed
        projects_api.update_project(project_id, change, session, visitor.principal)
    except (FormRefused, HTTPException) as exc:
        sentence, code = refusal(session, exc)
        return project_page(request, session, visitor, settings, project_id, error=sentence, code=code)
    return RedirectResponse(f"/console/projects/{project_id}?done=saved", status_code=303)


def _answer(request: Request, location: str | None, error: str | None, code: int) -> Response | None:
    """The console script's JSON answer to an upload, or None for a plain form post."""
    if SCRIPT_HEADER not in request.headers:
        return None
    if error is not None:
        return JSONResponse({"detail": error}, status_code=code)
    return JSONResponse({"location": location}, status_code=200)


@router.post("/projects/{project_id}/contents", dependencies=[CsrfChecked])
def create_content(
    request: Request,
    project_id: IdPath,
    session: SessionDep,
    visitor: CurrentVisitor,
    settings: SettingsDep,
    storage: StorageDep,
    title: Annotated[str, Form()] = "",
    image: Annotated[UploadFile | None, File()] = None,
    video: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """A new AR content from the form (title, photo, video): the API's upload, the same checks."""
    if video is not None and not video.filename and video.size == 0:
        video = None  # the picker was left empty: a form sends an empty part for it
    try:
        created = ar_content_api.create_ar_content(
            session, visitor.principal, settings, storage, project_id, value(Text200, title, "title"),
            image, video,
        )  # fmt: skip
    except (FormRefused, HTTPException) as exc:
        sentence, code = refusal(session, exc)
        scripted = _answer(request, None, sentence, code)
        return scripted or project_page(request, session, visitor, settings, project_id, error=sentence,
                                        code=code, title=title)  # fmt: skip
    location = f"/console/contents/{created.id}?done=content_created"
    return _answer(request, location, None, 200) or RedirectResponse(location, status_code=303)
