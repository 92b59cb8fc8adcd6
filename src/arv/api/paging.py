"""Query parameters of the listings, bounded so no value reaches the database out of range, and the
cursor paging they share with GET /api/notifications: newest first by id, `before_id` the cursor."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

# One bound of ids for the whole API (the databases' 32-bit INTEGER).
from arv.api.fields import MAX_ID

BeforeId = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="cursor: only records older than this id (the last id of a page)"),
]
CompanyFilter = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="admin keys only: one company's; a company key sees its own"),
]


T = TypeVar("T")


def page(
    query: Select[T], id_column: InstrumentedAttribute[int], *, limit: int, before_id: int | None
) -> Select[T]:
    """`query` newest first by `id_column`, `limit` rows older than `before_id`."""
    if before_id is not None:
        query = query.where(id_column < before_id)
    return query.order_by(id_column.desc()).limit(limit)
