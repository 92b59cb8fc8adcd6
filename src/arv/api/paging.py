"""Query parameters of the listings, bounded so no value reaches the database out of range, and the
cursor paging they share with GET /api/notifications: newest first by id, `before_id` the cursor."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Path, Query
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

# Ids are the databases' 32-bit integers: anything above cannot name a row.
MAX_ID = 2**31 - 1

Limit = Annotated[int, Query(ge=1, le=500, description="how many to answer, newest first")]
BeforeId = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="cursor: only records older than this id (the last id of a page)"),
]
CompanyFilter = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="admin keys only: one company's; a company key sees its own"),
]


def id_path(what: str) -> Any:
    """A path parameter naming a record, 1 to MAX_ID."""
    return Path(ge=1, le=MAX_ID, description=f"the id of the {what}")


def id_query(description: str) -> Any:
    return Query(ge=1, le=MAX_ID, description=description)


T = TypeVar("T")


def page(
    query: Select[T], id_column: InstrumentedAttribute[int], *, limit: int, before_id: int | None
) -> Select[T]:
    """`query` newest first by `id_column`, `limit` rows older than `before_id`."""
    if before_id is not None:
        query = query.where(id_column < before_id)
    return query.order_by(id_column.desc()).limit(limit)
