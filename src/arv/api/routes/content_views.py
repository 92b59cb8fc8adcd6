"""How often the public page of an AR content item was opened, per day."""

from datetime import date

from fastapi import APIRouter
from pydantic import BaseModel

from arv.api.deps import CurrentPrincipal, SessionDep, get_owned
from arv.api.schemas import IdPath
from arv.db.models import ARContent
from arv.services.public_content import views_by_day

router = APIRouter(prefix="/api/ar-content", tags=["ar-content"])


class DayViews(BaseModel):
    day: date
    count: int


class ContentViewsOut(BaseModel):
    ar_content_id: int
    total: int
    days: list[DayViews]


@router.get("/{content_id}/views", response_model=ContentViewsOut)
def content_views(content_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> ContentViewsOut:
    """Views of the content's AR page (each load that got playable content), per UTC day, oldest first."""
    content = get_owned(session, principal, ARContent, content_id, "AR content")
    days = [DayViews(day=day, count=count) for day, count in views_by_day(session, content.id)]
    return ContentViewsOut(ar_content_id=content.id, total=sum(d.count for d in days), days=days)
