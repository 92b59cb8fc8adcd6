"""Rendering the console's pages: one Jinja2 environment, the words of the visitor's language, and
the headers every console page carries (its own scripts only, no framing, forms to itself)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from arv.api.console.visitors import ANON_CSRF_COOKIE, Visitor, anonymous_csrf_token, set_cookie
from arv.api.console.words import WORDS, Words
from arv.api.security import permissions_policy
from arv.viewer.messages import pick_language

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_ROUTE = "/console/static/"

# The console runs only its own files: no inline script, no other origin, forms post to itself.
CONSOLE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "Permissions-Policy": permissions_policy(),
    # Pages show a studio's own data: never kept by a shared cache or the back button of a
    # signed-out browser.
    "Cache-Control": "no-store",
}


def _date(value: datetime | date | None, language: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        return value.strftime("%d.%m.%Y %H:%M UTC" if language == "ru" else "%Y-%m-%d %H:%M UTC")
    return value.strftime("%d.%m.%Y" if language == "ru" else "%Y-%m-%d")


def _megabytes(size: int | None) -> str:
    if size is None:
        return "—"
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} KB"


@lru_cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["megabytes"] = _megabytes
    return environment


def words_for(request: Request, visitor: Visitor | None) -> Words:
    if visitor is not None:
        return WORDS[visitor.language]
    return WORDS[pick_language(None, request.headers.get("accept-language"))]


def render(
    request: Request,
    template: str,
    visitor: Visitor | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page `template` for `visitor` (None before sign-in: the page gets a pre-session CSRF
    token, set as a cookie)."""
    words = words_for(request, visitor)
    csrf = visitor.csrf_token if visitor is not None else anonymous_csrf_token(request)
    html = (
        _environment()
        .get_template(template)
        .render(
            t=words,
            language=words.language,
            visitor=visitor,
            csrf_token=csrf,
            static=STATIC_ROUTE,
            path=request.url.path,
            done=words.done.get(request.query_params.get("done", ""), ""),
            when=lambda value: _date(value, words.language),
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
    if visitor is None and request.cookies.get(ANON_CSRF_COOKIE) != csrf:
        set_cookie(response, request, ANON_CSRF_COOKIE, csrf, max_age=None)
    return response
