"""The words of a notification: subject, plain text and HTML from Jinja2 templates in the company's language.

Templates live in `templates/<language>/<notification_type>.{subject.txt,txt,html}`; the facts they
use come from the database at the moment of sending, so rows written set-based by the periodic
passes need nothing but their type and ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from markupsafe import escape
from sqlalchemy.orm import Session

from arv.config import Settings
from arv.db.models import ARContent, Company, Notification, Portrait, Project, utcnow

TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"

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
class RenderedMessage:
    """One notification in words, ready for any channel."""

    subject: str
    text: str
    html: str

    @property
    def chat_text(self) -> str:
        """What a chat message says: the subject as its first line, then the text."""
        return f"{self.subject}\n\n{self.text}"


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


@lru_cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["plural_ru"] = plural_ru
    return env


def has_templates(notification_type: str) -> bool:
    return (TEMPLATES / DEFAULT_LANGUAGE / f"{notification_type}.txt").is_file()


def render(notification_type: str, language: str, context: dict[str, Any]) -> RenderedMessage:
    """The message of `notification_type` in `language` (English when there is no such language)."""
    env = _environment()
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def one(suffix: str) -> str:
        return env.get_template(f"{language}/{notification_type}.{suffix}").render(**context).strip()

    try:
        return RenderedMessage(subject=one("subject.txt"), text=one("txt"), html=one("html"))
    except TemplateNotFound as exc:
        raise ValueError(f"no templates for notification type {notification_type!r}") from exc


def message_context(
    session: Session, notification: Notification, company: Company, settings: Settings
) -> dict[str, Any]:
    """The facts a template may use, read from the records the notification names."""
    language = language_of(company)
    payload = dict(notification.payload or {})
    project = session.get(Project, notification.project_id) if notification.project_id else None
    content = session.get(ARContent, notification.ar_content_id) if notification.ar_content_id else None
    portrait_id = payload.get("portrait_id")
    portrait = session.get(Portrait, portrait_id) if isinstance(portrait_id, int) else None
    expires_at = project.expires_at if project is not None else None
    days_left = None
    if expires_at is not None:
        # Whole days, rounded up: a project ending in 6 days and 2 hours ends "in 7 days".
        days_left = max(0, math.ceil((expires_at - utcnow()).total_seconds() / 86400))
    return {
        "company_name": company.name,
        "project_name": project.name if project is not None else None,
        "project_id": notification.project_id,
        "expires_on": format_date(expires_at, language) if expires_at is not None else None,
        "days_left": days_left,
        "content_title": content.title if content is not None else None,
        "content_id": notification.ar_content_id,
        "portrait_id": portrait.id if portrait is not None else None,
        "reason": payload.get("reason"),
        "api_base_url": settings.api_base_url,
        "stored_subject": notification.subject,
        "stored_message": notification.message,
    }


def render_notification(
    session: Session, notification: Notification, company: Company, settings: Settings
) -> RenderedMessage:
    """The words to send: from the templates when the type has them, else what the row says."""
    if not has_templates(notification.notification_type):
        text = notification.message
        return RenderedMessage(subject=notification.subject, text=text, html=_paragraphs(text))
    context = message_context(session, notification, company, settings)
    return render(notification.notification_type, language_of(company), context)


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{escape(part)}</p>" for part in text.split("\n\n"))
