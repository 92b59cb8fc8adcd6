"""AR content: a portrait image in a project, its marker, and the videos that play over it."""

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile, status
from sqlalchemy import select

from arv.api.deps import CurrentPrincipal, SessionDep, SettingsDep, StorageDep, get_owned, get_owned_video
from arv.api.fields import file_name
from arv.api.paging import BeforeId, CompanyFilter, page
from arv.api.presenters import ar_content_out, video_out
from arv.api.schemas import (
    ARContentOut,
    ARContentUpdate,
    Id,
    IdPath,
    IdQuery,
    PageLimit,
    TaskAccepted,
    Text200,
    VideoOut,
)
from arv.api.uploads import StoredUntilCommit, read_upload, refused
from arv.config import Settings
from arv.db.models import ARContent, Project, Video, VideoRotationSchedule
from arv.services import deletion, markers, previews, qr_codes, quotas, transcode
from arv.services.uploads import UploadRefused, check_image
from arv.services.video_probe import VideoProbe, probe_video

router = APIRouter(prefix="/api/ar-content", tags=["ar-content"])

# The jobs each video upload queues: its poster and its web renditions.
VIDEO_JOBS = [previews.POSTER, transcode.TRANSCODE]


def _checked_video(data: bytes, settings: Settings) -> VideoProbe:
    """The upload read by ffprobe, or the 4xx saying why it is refused; nothing is stored yet."""
    try:
        return probe_video(
            data, max_seconds=settings.max_video_seconds, timeout_s=settings.video_probe_timeout_s
        )
    except UploadRefused as exc:
        raise refused(exc) from exc


def _add_video(
    session: SessionDep,
    stored: StoredUntilCommit,
    content: ARContent,
    data: bytes,
    container: VideoProbe,
    filename: str | None,
) -> Video:
    video = Video(
        ar_content_id=content.id,
        storage_key=stored.put("videos", container.suffix, data, container.content_type),
        content_type=container.content_type,
        size_bytes=len(data),
        filename=file_name(filename),
        probe=container.record(),
        duration_s=container.duration_s,
        width=container.width,
        height=container.height,
        rotation=container.rotation,
    )
    session.add(video)
    session.flush()
    if content.active_video_id is None:
        content.active_video_id = video.id
    previews.request_poster(session, video, content.company_id)
    transcode.request_transcode(session, video, content.company_id)
    return video


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ARContentOut)
def create_ar_content(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    project_id: Annotated[Id, Form()],
    title: Annotated[Text200, Form()],
    image: Annotated[UploadFile | None, File()] = None,
    video: Annotated[UploadFile | None, File()] = None,
) -> ARContentOut:
    """Store the image (and the first video), queue the marker; answers with the content and `task_id`."""
    project = get_owned(session, principal, Project, project_id, "project")
    limit = settings.max_upload_bytes
    image_data = read_upload(image, limit=limit, field="image")
    video_data = read_upload(video, limit=limit, field="video") if video is not None else None
    try:
        checked = check_image(image_data, max_pixels=settings.max_image_pixels)
    except UploadRefused as exc:
        raise refused(exc) from exc
    container = _checked_video(video_data, settings) if video_data is not None else None
    admitted = quotas.admit_upload(
        session,
        project.company_id,
        settings,
        size_bytes=len(image_data) + len(video_data or b""),
        kinds=[markers.COMPILE_CONTENT_MARKER, *(VIDEO_JOBS if video_data is not None else [])],
    )
    with StoredUntilCommit(session, storage) as stored:
        content = ARContent(
            company_id=project.company_id,
            project_id=project.id,
            title=title,
            image_key=stored.put("images", checked.suffix, image_data, checked.content_type),
            image_content_type=checked.content_type,
            image_width=checked.width,
            image_height=checked.height,
            image_size_bytes=len(image_data),
            is_active=project.status == "active",
        )
        session.add(content)
        session.flush()
        if video_data is not None and container is not None:
            _add_video(session, stored, content, video_data, container, video.filename if video else None)
        markers.request_compile(session, content)
        qr_codes.request_qr_code(session, content)
        previews.request_thumbnail(session, content)
        admitted.confirm()
        session.commit()
    return ar_content_out(content, storage, settings)


@router.get("", response_model=list[ARContentOut])
def list_ar_content(
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    project_id: IdQuery = None,
    company_id: CompanyFilter = None,
    limit: PageLimit = 50,
    before_id: BeforeId = None,
) -> list[ARContentOut]:
    """The caller's AR content, newest first; page on with `before_id` = the last id of a page."""
    query = select(ARContent)
    if project_id is not None:
        project = get_owned(session, principal, Project, project_id, "project")
        query = query.where(ARContent.project_id == project.id)
    if not principal.is_admin:
        query = query.where(ARContent.company_id == principal.company_id)
    elif company_id is not None:
        query = query.where(ARContent.company_id == company_id)
    found = session.scalars(page(query, ARContent.id, limit=limit, before_id=before_id))
    return [ar_content_out(content, storage, settings) for content in found]


@router.get("/{content_id}", response_model=ARContentOut)
def read_ar_content(
    content_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> ARContentOut:
    return ar_content_out(
        get_owned(session, principal, ARContent, content_id, "AR content"), storage, settings
    )


@router.patch("/{content_id}", response_model=ARContentOut)
def update_ar_content(
    content_id: IdPath,
    body: ARContentUpdate,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
) -> ARContentOut:
    """Rename, or choose the video the content plays now (one of its own). With a rotation schedule
    that holds the video, the rotation goes on from it; a video outside the schedule plays until the
    next rotation."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    if body.title is not None:
        content.title = body.title
    if body.active_video_id is not None:
        video = session.get(Video, body.active_video_id)
        if video is None or video.ar_content_id != content.id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"video {body.active_video_id} is not a video of AR content {content.id}",
            )
        schedule = session.scalars(
            select(VideoRotationSchedule).where(VideoRotationSchedule.ar_content_id == content.id)
        ).one_or_none()
        sequence = [int(v) for v in schedule.video_sequence] if schedule is not None else []
        if schedule is not None and video.id in sequence:
            schedule.current_index = sequence.index(video.id)
        content.active_video_id = video.id
    session.commit()
    return ar_content_out(content, storage, settings)


@router.post(
    "/{content_id}/generate-marker", status_code=status.HTTP_202_ACCEPTED, response_model=TaskAccepted
)
def regenerate_marker(content_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> TaskAccepted:
    """Compile again; the marker being served stays until the new one is ready. A compile of it still
    queued is the answer (no duplicate); past the company's compile quota, 429."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    job_id = markers.request_recompile(session, content)
    session.commit()
    return TaskAccepted(task_id=job_id)


@router.post("/{content_id}/videos", status_code=status.HTTP_201_CREATED, response_model=VideoOut)
def upload_video(
    content_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    video: Annotated[UploadFile | None, File()] = None,
) -> VideoOut:
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    data = read_upload(video, limit=settings.max_upload_bytes, field="video")
    container = _checked_video(data, settings)
    admitted = quotas.admit_upload(
        session, content.company_id, settings, size_bytes=len(data), kinds=VIDEO_JOBS
    )
    with StoredUntilCommit(session, storage) as stored:
        created = _add_video(session, stored, content, data, container, video.filename if video else None)
        admitted.confirm()
        session.commit()
    return video_out(created, storage, settings)


@router.get("/{content_id}/videos", response_model=list[VideoOut])
def list_videos(
    content_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    storage: StorageDep,
    limit: PageLimit = 50,
    before_id: BeforeId = None,
) -> list[VideoOut]:
    """The content's videos, newest first; page on with `before_id` = the last id of a page."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    query = select(Video).where(Video.ar_content_id == content.id)
    videos = session.scalars(page(query, Video.id, limit=limit, before_id=before_id))
    return [video_out(v, storage, settings) for v in videos]


@router.delete("/{content_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_ar_content(content_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete the content with its videos, marker, previews and QR code; its public page answers 410."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    deletion.delete_ar_content(session, content)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{content_id}/videos/{video_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_video(
    content_id: IdPath,
    video_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Response:
    """Delete one video; a content playing it switches to another (the next of its rotation, if any)."""
    content, video = get_owned_video(session, principal, content_id, video_id)
    deletion.delete_video(session, content, video)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
