"""Portraits: an uploaded photo compiled into a MindAR marker."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from sqlalchemy import select

from arv.api.deps import CurrentPrincipal, SessionDep, SettingsDep, StorageDep, acting_company, get_owned
from arv.api.paging import BeforeId, CompanyFilter, page
from arv.api.presenters import portrait_out
from arv.api.schemas import Id, IdPath, PageLimit, PortraitOut
from arv.api.uploads import StoredUntilCommit, read_upload, refused
from arv.db.models import Portrait
from arv.services import deletion, markers, previews, quotas
from arv.services.uploads import UploadRefused, check_image

router = APIRouter(prefix="/api/portraits", tags=["portraits"])


@router.post("/upload", status_code=status.HTTP_201_CREATED, response_model=PortraitOut)
def upload_portrait(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    file: Annotated[UploadFile | None, File()] = None,
    company_id: Annotated[Id | None, Form()] = None,
) -> PortraitOut:
    """Store the photo and queue its marker; answers at once with the portrait and its `task_id`."""
    company = acting_company(session, principal, company_id)
    data = read_upload(file, limit=settings.max_upload_bytes, field="file")
    try:
        image = check_image(data, max_pixels=settings.max_image_pixels, field="file")
    except UploadRefused as exc:
        raise refused(exc) from exc
    admitted = quotas.admit_upload(
        session, company.id, settings, size_bytes=len(data), kinds=[markers.COMPILE_PORTRAIT_MARKER]
    )
    with StoredUntilCommit(session, storage) as stored:
        portrait = Portrait(
            company_id=company.id,
            image_key=stored.put("images", image.suffix, data, image.content_type),
            image_content_type=image.content_type,
            image_width=image.width,
            image_height=image.height,
            image_size_bytes=len(data),
        )
        session.add(portrait)
        session.flush()
        markers.request_compile(session, portrait)
        previews.request_thumbnail(session, portrait)
        admitted.confirm()
        session.commit()
    return portrait_out(portrait, storage, settings)


@router.get("", response_model=list[PortraitOut])
def list_portraits(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    company_id: CompanyFilter = None,
    limit: PageLimit = 50,
    before_id: BeforeId = None,
) -> list[PortraitOut]:
    """The caller's portraits, newest first; page on with `before_id` = the last id of a page."""
    query = select(Portrait)
    if not principal.is_admin:
        query = query.where(Portrait.company_id == principal.company_id)
    elif company_id is not None:
        query = query.where(Portrait.company_id == company_id)
    found = session.scalars(page(query, Portrait.id, limit=limit, before_id=before_id))
    return [portrait_out(portrait, storage, settings) for portrait in found]


@router.delete("/{portrait_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_portrait(portrait_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete the portrait with its photo, marker and thumbnail."""
    portrait = get_owned(session, principal, Portrait, portrait_id, "portrait")
    deletion.delete_portrait(session, portrait)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{portrait_id}", response_model=PortraitOut)
def read_portrait(
    portrait_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> PortraitOut:
    return portrait_out(get_owned(session, principal, Portrait, portrait_id, "portrait"), storage, settings)
