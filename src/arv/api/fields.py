"""The kinds of input the API takes, each with its bounds: ids, one-line texts, e-mail addresses,
instants, page sizes. Every route and body names one of these instead of a bare `int` or `str`, so
a value out of range is a 422 that says why, never a database error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, WithJsonSchema

from arv.mail_addresses import MAX_EMAIL, mailbox

# Ids are the databases' INTEGER (PostgreSQL's is 32 bits; SQLite's 64): 1 to 2**31 - 1.
MAX_ID = 2**31 - 1
# Instants a person could mean; outside this range date arithmetic (a warning N days before
# expiry, the next rotation slot) would run off Python's and the databases' calendars.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC)
# A page of a listing.
MAX_PAGE = 500

# C0 controls (NUL..US, so CR, LF and TAB too), DEL, the C1 controls, and the Unicode line and
# paragraph separators: none belongs in a name, and a line break in one breaks e-mail headers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(value: str) -> str:
    """`value` if it is one line of printable text and not only spaces."""
    if _CONTROL.search(value):
        raise ValueError("must be one line of text, without line breaks, tabs or other control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# The same rule for the schema's readers (and fuzzers): no character of _CONTROL.
ONE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
_ONE_LINE_SCHEMA = Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})

Text200 = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(one_line), _ONE_LINE_SCHEMA
]
Text100 = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(one_line), _ONE_LINE_SCHEMA
]
Text64 = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(one_line), _ONE_LINE_SCHEMA
]
Text16 = Annotated[
    str, StringConstraints(min_length=1, max_length=16), AfterValidator(one_line), _ONE_LINE_SCHEMA
]
# A cron expression: five fields, bounded before any parsing (the stored column is as long).
CronText = Annotated[
    str, StringConstraints(min_length=1, max_length=120), AfterValidator(one_line), _ONE_LINE_SCHEMA
]


def file_name(value: str | None, max_length: int = 255) -> str | None:
    """An uploaded file's own name as kept (shown back, and in download headers): its control
    characters dropped, at most `max_length` characters, None when nothing is left."""
    kept = _CONTROL.sub("", value or "").strip()[:max_length]
    return kept or None


# An id in a body or a form.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# An id in a path or a query.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description=f"an id, 1 to {MAX_ID}")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
# A job's id (a UUID).
TaskIdPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9-]+$")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"at most this many, 1 to {MAX_PAGE}")]
PageOffset = Annotated[int, Query(ge=0, le=MAX_ID, description="skip this many")]


def in_range(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year}, e.g. 2027-01-31T00:00:00Z")
    return value


# An instant with its offset (2027-01-31T00:00:00Z), years 2000 to 2200.
Instant = Annotated[AwareDatetime, AfterValidator(in_range)]


# --- e-mail addresses ------------------------------------------------------------------------------
# The rules are arv.mail_addresses' (the console's accounts check addresses by them too).
Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=MAX_EMAIL),
    AfterValidator(mailbox),
    WithJsonSchema({"type": "string", "format": "email", "minLength": 3, "maxLength": MAX_EMAIL}),
]
