"""Turning records into response bodies, with short-lived download URLs for what they store."""

from __future__ import annotations

from arv.api.schemas import ARContentOut, PortraitOut, RenditionOut, VideoOut
from arv.config import Settings
from arv.db.models import ARContent, Portrait, Video
from arv.storage import Storage


def _marker_fields(record: Portrait | ARContent, storage: Storage, settings: Settings) -> dict[str, object]:
    ttl = settings.download_url_ttl_s
    return {
        "id": record.id,
        "company_id": record.company_id,
        "marker_status": record.marker_status,
        "marker_url": storage.download_url(record.marker_key, expires_in=ttl) if record.marker_key else None,
        "marker_error": record.marker_error,
        "marker_metadata": record.marker_metadata,
        "task_id": record.marker_task_id,
        "image_url": storage.download_url(record.image_key, expires_in=ttl),
        "image_width": record.image_width,
        "image_height": record.image_height,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def portrait_out(portrait: Portrait, storage: Storage, settings: Settings) -> PortraitOut:
    return PortraitOut(**_marker_fields(portrait, storage, settings))  # type: ignore[arg-type]


def public_url(content: ARContent, settings: Settings) -> str:
    return f"{settings.api_base_url}/ar/{content.unique_id}"


def ar_content_out(content: ARContent, storage: Storage, settings: Settings) -> ARContentOut:
    return ARContentOut(
        **_marker_fields(content, storage, settings),  # type: ignore[arg-type]
        project_id=content.project_id,
        title=content.title,
        unique_id=content.unique_id,
        is_active=content.is_active,
        active_video_id=content.active_video_id,
        public_url=public_url(content, settings),
    )


def video_out(video: Video, storage: Storage, settings: Settings) -> VideoOut:
    ttl = settings.download_url_ttl_s
    renditions = [
        RenditionOut(**{name: value for name, value in facts.items() if name != "key"},
                     url=storage.download_url(facts["key"], expires_in=ttl))
        for facts in video.renditions or []
    ]  # fmt: skip
    original_kept = video.original_deleted_at is None
    return VideoOut(
        id=video.id,
        ar_content_id=video.ar_content_id,
        content_type=video.content_type,
        size_bytes=video.size_bytes,
        filename=video.filename,
        created_at=video.created_at,
        video_url=storage.download_url(
            video.storage_key if original_kept or not video.rendition_key else video.rendition_key,
            expires_in=ttl,
        ),
        duration_s=video.duration_s,
        width=video.width,
        height=video.height,
        rotation=video.rotation,
        frame_rate=(video.probe or {}).get("frame_rate"),
        video_codec=(video.probe or {}).get("video_codec"),
        audio_codec=(video.probe or {}).get("audio_codec"),
        rendition_status=video.rendition_status,
        transcode_task_id=video.transcode_task_id,
        transcode_progress=video.transcode_progress,
        transcode_error=video.transcode_error,
        rendition_url=renditions[0].url if renditions else None,
        renditions=renditions,
        original_kept=original_kept,
    )
