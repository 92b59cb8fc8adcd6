"""The words of a notification: subject, plain text and HTML from Jinja2 templates, the one source of them.

Templates live in `templates/<language>/<notification_type>.{subject.txt,txt,html}`. The channels render
a notification with `render_notification` and the API with `notification_words` (the same without the
HTML), from its type and the facts of its event that its `payload` keeps (the names, the expiry date
and the language at the time of the event): so the e-mail, the Telegram message and what the API lists
say the same, byte for byte, however late or often they are rendered, and a rename after the event
changes none of them. The periodic passes write those
facts set-based in SQL and no words: words are never spelled outside the templates. A notification
written before its payload kept the facts is rendered from the records it names.

Whatever the records hold, every fact reaches the templates on one line (line breaks and other control
characters become a space): a subject is one line, as a mail header must be.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from sqlalchemy.orm import Session

from arv.db.models import ARContent, Company, Notification, Project

TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"

# The facts of an event a notification keeps in its payload; a payload holding every one of them (null
# when the event has none) is the whole input of its words.
FACTS = ("language", "company_name", "project_name", "expires_at", "content_title", "portrait_id", "reason")

# C0 and C1 control characters and the Unicode line and paragraph separators: everything that
# `str.splitlines` breaks at, which a mail header refuses, and the rest that no name should carry.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")

# Russian dates need the month in the genitive ("29 ноября 2026"); no locale database is assumed.
_MONTHS = {
    "en": [
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ],
    "ru": [
        "января", "февраля", "марта", "апреля", "мая", "июня",
        "июля", "августа", "сентября", "октября", "ноября", "декабря",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class Words:
    """What a notification says: the API lists these, the e-mail and the chat message send them."""

    subject: str
    text: str

    @property
    def chat_text(self) -> str:
        """What a chat message says: the subject as its first line, then the text."""
        return f"{self.subject}\n\n{self.text}"


@dataclass(frozen=True)
class RenderedMessage(Words):
    """One notification in words, ready for any channel: its `Words` and their HTML."""

    html: str


def language_of(company: Company) -> str:
    return company.language if company.language in LANGUAGES else DEFAULT_LANGUAGE


def format_date(value: datetime, language: str) -> str:
    return f"{value.day} {_MONTHS[language][value.month - 1]} {value.year}"


def plural_ru(count: int, one: str, few: str, many: str) -> str:
    """The Russian noun form for `count` (1 день, 2 дня, 5 дней, 21 день, 11 дней)."""
    if count % 10 == 1 and count % 100 != 11:
        return one
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return few
    return many


def one_line(text: str) -> str:
    """`text` with each run of line breaks and other control characters replaced by one space."""
    return _CONTROL_CHARACTERS.sub(" ", text)


@lru_cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the templates ship with the package: no file check at each render
    )
    env.filters["plural_ru"] = plural_ru
    return env


def has_templates(notification_type: str) -> bool:
    return (TEMPLATES / DEFAULT_LANGUAGE / f"{notification_type}.txt").is_file()


def render(notification_type: str, language: str, context: dict[str, Any]) -> RenderedMessage:
    """The message of `notification_type` in `language` (English when there is no such language);
    the text values of `context` are put on one line first."""
    words = render_words(notification_type, language, context)
    return RenderedMessage(words.subject, words.text, _part(notification_type, language, "html", context))


def render_words(notification_type: str, language: str, context: dict[str, Any]) -> Words:
    """The subject and text of `render`, without the HTML."""
    return Words(
        _part(notification_type, language, "subject.txt", context),
        _part(notification_type, language, "txt", context),
    )


def _part(notification_type: str, language: str, suffix: str, context: dict[str, Any]) -> str:
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    flat = {name: one_line(value) if isinstance(value, str) else value for name, value in context.items()}
    try:
        template = _environment().get_template(f"{language}/{notification_type}.{suffix}")
    except TemplateNotFound as exc:
        raise ValueError(f"no templates for notification type {notification_type!r}") from exc
    return template.render(**flat).strip()


def timestamp_fact(value: datetime) -> str:
    """How a payload keeps a moment: ISO 8601 in UTC, whole seconds ('2027-03-13T12:00:00+00:00').

    The periodic passes spell the same in SQL (`arv.services.expiry`)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def event_facts(
    session: Session,
    *,
    company: Company,
    project_id: int | None,
    ar_content_id: int | None,
    payload: dict[str, Any] | None,
) -> dict[str, Any]:
    """`payload` completed with every fact of `FACTS`, read from the records as they are now."""
    payload = dict(payload or {})
    project = session.get(Project, project_id) if project_id is not None else None
    content = session.get(ARContent, ar_content_id) if ar_content_id is not None else None
    portrait_id = payload.get("portrait_id")
    return {
        **payload,
        "language": language_of(company),
        "company_name": company.name,
        "project_name": project.name if project is not None else None,
        "expires_at": (
            timestamp_fact(project.expires_at)
            if project is not None and project.expires_at is not None
            else None
        ),
        "content_title": content.title if content is not None else None,
        "portrait_id": portrait_id if isinstance(portrait_id, int) else None,
        "reason": payload.get("reason"),
    }


def facts_of(session: Session, notification: Notification) -> dict[str, Any]:
    """The facts `notification` is rendered from: its payload, or for a row written before payloads
    kept them all, the records it names."""
    payload = notification.payload or {}
    if all(name in payload for name in FACTS):
        return payload
    company = session.get(Company, notification.company_id)
    assert company is not None  # the notification's foreign key cascades with the company
    return event_facts(
        session,
        company=company,
        project_id=notification.project_id,
        ar_content_id=notification.ar_content_id,
        payload=payload,
    )


def render_notification(session: Session, notification: Notification) -> RenderedMessage:
    """The words of `notification` with their HTML, as every channel sends them."""
    return render(*_template_input(session, notification))


def notification_words(session: Session, notification: Notification) -> Words:
    """The words of `notification` as `render_notification` gives them, without rendering the HTML."""
    return render_words(*_template_input(session, notification))


def _template_input(session: Session, notification: Notification) -> tuple[str, str, dict[str, Any]]:
    """The type, language and template context of `notification`."""
    facts = facts_of(session, notification)
    expires_at = datetime.fromisoformat(facts["expires_at"]) if facts["expires_at"] else None
    days_left = None
    if expires_at is not None:
        # Whole days from the event, rounded up: a project ending in 6 days and 2 hours ends "in 7 days".
        days_left = max(0, math.ceil((expires_at - notification.created_at).total_seconds() / 86400))
    language = facts["language"] if facts["language"] in LANGUAGES else DEFAULT_LANGUAGE
    context = {
        "company_name": facts["company_name"],
        "project_name": facts["project_name"],
        "project_id": notification.project_id,
        "expires_on": format_date(expires_at, language) if expires_at is not None else None,
        "days_left": days_left,
        "content_title": facts["content_title"],
        "content_id": notification.ar_content_id,
        "portrait_id": facts["portrait_id"],
        "reason": facts["reason"],
    }
    return notification.notification_type, language, context
