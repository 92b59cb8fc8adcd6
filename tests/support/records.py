"""Records written straight to the database, for tests whose subject is not the upload path."""

from __future__ import annotations

from datetime import datetime

from arv.db.models import ARContent, Company, Project, Video
from arv.db.session import session_scope


def make_company(name: str = "Studio", **fields: object) -> int:
    with session_scope() as session:
        company = Company(name=name, **fields)
        session.add(company)
        session.flush()
        return company.id


def make_content(
    company_id: int, videos: int, *, project_expires_at: datetime | None = None
) -> tuple[int, list[int]]:
    """AR content of `company_id` in a new project, with `videos` videos, the first one active;
    returns the content's id and the videos' ids."""
    with session_scope() as session:
        project = Project(company_id=company_id, name="Album", expires_at=project_expires_at)
        session.add(project)
        session.flush()
        content = ARContent(
            company_id=company_id,
            project_id=project.id,
            title="Portrait",
            image_key="images/p.png",
            image_content_type="image/png",
            image_width=640,
            image_height=480,
        )
        session.add(content)
        session.flush()
        rows = [
            Video(
                ar_content_id=content.id,
                storage_key=f"videos/{i}.mp4",
                content_type="video/mp4",
                size_bytes=1,
            )
            for i in range(videos)
        ]
        session.add_all(rows)
        session.flush()
        content.active_video_id = rows[0].id if rows else None
        return content.id, [v.id for v in rows]
