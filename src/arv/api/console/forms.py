"""Turning a console form into the API's own request bodies, and the API's refusals into the words a
form shows: the console checks nothing the API does not, and words each refusal as the API does."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from fastapi import HTTPException, status
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

M = TypeVar("M", bound=BaseModel)


class FormRefused(Exception):
    """The form cannot be done as sent; `str(exc)` says why, `status_code` is the API's answer."""

    def __init__(self, sentence: str, status_code: int = status.HTTP_422_UNPROCESSABLE_CONTENT) -> None:
        super().__init__(sentence)
        self.status_code = status_code


def _validation_sentence(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ()))
        field = (names or {}).get(field, field)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def body(model: type[M], names: dict[str, str] | None = None, **fields: Any) -> M:
    """The API's request body `model` of the fields sent (fields left empty are left out)."""
    sent = {name: value for name, value in fields.items() if value is not None}
    try:
        return model.model_validate(sent)
    except ValidationError as exc:
        raise FormRefused(_validation_sentence(exc, names)) from None


def value(kind: Any, raw: Any, field: str) -> Any:
    """`raw` checked as the API checks its parameter of type `kind` (`Text200`, `Id`...)."""
    try:
        return TypeAdapter(kind).validate_python(raw)
    except ValidationError as exc:
        raise FormRefused(f"{field}: {_validation_sentence(exc)}") from None


def refusal(session: Session, exc: HTTPException | FormRefused) -> tuple[str, int]:
    """Undo what the refused operation began, and say why (the sentence and the status) for the
    page that shows the form again. A record that is not the visitor's (404) is raised again: the
    page is then as absent as the record."""
    session.rollback()
    if isinstance(exc, FormRefused):
        return str(exc), exc.status_code
    if exc.status_code == status.HTTP_404_NOT_FOUND:
        raise exc
    return str(exc.detail), exc.status_code


def expiry_of(day: str | None) -> datetime | None:
    """An `<input type=date>` value as the API's `expires_at`: the project runs through that day
    (UTC) and expires at the midnight that ends it. Empty: no expiry."""
    if not day:
        return None
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise FormRefused(f"the expiry date {day!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(parsed + timedelta(days=1), time(), tzinfo=UTC)


def expiry_day(expires_at: datetime | None) -> str:
    """The inverse of `expiry_of`, for the form's current value."""
    if expires_at is None:
        return ""
    return (expires_at.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat()
