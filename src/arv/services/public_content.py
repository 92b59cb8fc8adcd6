"""What the public viewer may see of an AR content item, and the count of its views per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from arv.db.models import ARContent, Company, ContentView, DeletedContent, RenditionStatus, Video, utcnow

# The states of a content item as the viewer sees it.
ACTIVE = "active"
EXPIRED = "expired"
NOT_READY = "not_ready"
# Marker ready, and the video's renditions still being made (none of the content's videos plays yet).
PREPARING = "preparing"
UNKNOWN = "unknown"
DELETED = "deleted"


@dataclass(frozen=True)
class ViewerContent:
    """A content item looked up by its public id; `content` and `video` are set only when `state` says so.

    `state` is ACTIVE (playable), EXPIRED (switched off or its project expired), NOT_READY (no marker, no
    video, or no video that could be transcoded), PREPARING (the marker is ready and the video's
    renditions are being made: `video` is the one being prepared), DELETED (the content was deleted:
    nothing of it is left but its id) or UNKNOWN (no such id). `language` is the owning company's, or
    None when unknown.
    """

    state: str
    language: str | None = None
    content: ARContent | None = None
    video: Video | None = None


def find_for_viewer(session: Session, unique_id: str) -> ViewerContent:
    """The content behind a public id and whether the viewer may play it now.

    A project whose `expires_at` has passed counts as expired at once, before the periodic pass
    switches it off, so expiry takes effect on the next page load.
    """
    row = session.execute(
        select(ARContent, Company.language)
        .join(Company, Company.id == ARContent.company_id)
        .where(ARContent.unique_id == unique_id)
    ).first()
    if row is None:
        deleted = session.get(DeletedContent, unique_id) is not None
        return ViewerContent(DELETED if deleted else UNKNOWN)
    content, language = row
    project = content.project
    expired_by_date = project.expires_at is not None and project.expires_at <= utcnow()
    if not content.is_active or project.status != "active" or expired_by_date:
        return ViewerContent(EXPIRED, language)
    video = session.get(Video, content.active_video_id) if content.active_video_id else None
    # A marker being recompiled (status pending) still has its previous file, which stays served.
    if content.marker_key is None or video is None:
        return ViewerContent(NOT_READY, language, content)
    if is_playable(video):
        return ViewerContent(ACTIVE, language, content, video)
    # The video chosen is not ready, or could not be transcoded: the content keeps playing one of its
    # videos that is (the newest), while there is one.
    other = session.scalars(
        select(Video)
        .where(
            Video.ar_content_id == content.id,
            or_(Video.rendition_key.is_not(None), Video.rendition_status == RenditionStatus.ORIGINAL),
        )
        .order_by(Video.id.desc())
        .limit(1)
    ).first()
    if other is not None:
        return ViewerContent(ACTIVE, language, content, other)
    if video.rendition_status in (RenditionStatus.PENDING, RenditionStatus.PROCESSING):
        return ViewerContent(PREPARING, language, content, video)
    return ViewerContent(NOT_READY, language, content)


def is_playable(video: Video) -> bool:
    """Whether the viewer can play the video now: it has a rendition (one made before a new transcode
    stays served), or it is from before renditions and plays as uploaded."""
    return video.rendition_key is not None or video.rendition_status == RenditionStatus.ORIGINAL


def playback_keys(video: Video) -> tuple[str, str | None]:
    """The storage keys the viewer plays of a playable video: the main one, and the small one if any."""
    if video.rendition_key is not None:
        return video.rendition_key, video.small_rendition_key
    return video.storage_key, None


def count_view(session: Session, ar_content_id: int, *, day: date | None = None) -> None:
    """Add one view to the content's counter of `day` (today, UTC) in one statement, safe under
    concurrent page loads: the insert-or-increment happens in the database, not in Python."""
    day = day or utcnow().date()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ContentView).values(ar_content_id=ar_content_id, day=day, count=1)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ContentView.ar_content_id, ContentView.day],
            set_={"count": ContentView.count + 1},
        )
    )


def views_by_day(
    session: Session, ar_content_id: int, *, since: date | None = None
) -> list[tuple[date, int]]:
    """The content's view counts of the days that had views (from `since` on, if given), oldest first."""
    statement = select(ContentView.day, ContentView.count).where(ContentView.ar_content_id == ar_content_id)
    if since is not None:
        statement = statement.where(ContentView.day >= since)
    rows = session.execute(statement.order_by(ContentView.day))
    return [(day, count) for day, count in rows]


def views_per_day(
    session: Session, content_id: int, *, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """The content's views on each of the last `days` UTC days up to `today` (default: today, UTC),
    one entry per day, a day without views counting 0, oldest first."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    counted = dict(views_by_day(session, content_id, since=first))
    return [(day, counted.get(day, 0)) for day in (first + timedelta(days=n) for n in range(days))]
