"""Rendering the AR page: one template, the state it opens in, and the words of its language."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from arv.viewer.assets import assets_base, import_map, vendor_modules
from arv.viewer.messages import MESSAGES

TEMPLATES_DIR = Path(__file__).parent / "templates"

# The values of <body data-state>; the page moves between them, tests and people read them.
STATES = ("loading", "scanning", "tracking", "expired", "error")


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element: no "</script>" can close it early."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


@lru_cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]))


def render_viewer(
    *,
    state: str,
    language: str,
    unique_id: str,
    cdn_base_url: str = "",
    reason: str | None = None,
    nonce: str | None = None,
) -> str:
    """The page of `unique_id` opening in `state`.

    Only a page opening in `loading` carries the AR script; a page opening in `expired` or `error`
    (with `reason`: unknown, not_ready, deleted) is plain text and never asks for the camera. `nonce`
    marks the inline import map for the page's Content-Security-Policy.
    """
    if state not in STATES:
        raise ValueError(f"unknown viewer state {state!r}")
    base = assets_base(cdn_base_url)
    config = {"contentUrl": f"/api/ar/{unique_id}"}
    return (
        _environment()
        .get_template("viewer.html")
        .render(
            state=state,
            reason=reason,
            nonce=nonce,
            language=language,
            text=MESSAGES[language],
            base=base,
            import_map=_script_json(import_map(base)),
            config=_script_json(config),
            runs_ar=state == "loading",
            modules=vendor_modules() if state == "loading" else (),
        )
    )
