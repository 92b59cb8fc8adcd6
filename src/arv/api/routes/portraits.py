"""Portraits: an uploaded photo compiled into a MindAR marker."""

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from arv.api.deps import CurrentPrincipal, SessionDep, SettingsDep, StorageDep, acting_company, get_owned
from arv.api.presenters import portrait_out
from arv.api.schemas import PortraitOut
from arv.api.uploads import StoredUntilCommit, read_upload, refused
from arv.db.models import Portrait
from arv.services import markers, previews, quotas
from arv.services.uploads import UploadRefused, check_image

router = APIRouter(prefix="/api/portraits", tags=["portraits"])


@router.post("/upload", status_code=status.HTTP_201_CREATED, response_model=PortraitOut)
def upload_portrait(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    file: Annotated[UploadFile | None, File()] = None,
    company_id: Annotated[int | None, Form()] = None,
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


@router.get("/{portrait_id}", response_model=PortraitOut)
def read_portrait(
    portrait_id: int,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> PortraitOut:
    return portrait_out(get_owned(session, principal, Portrait, portrait_id, "portrait"), storage, settings)
