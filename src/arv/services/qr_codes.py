"""QR codes of AR content: the public page's URL as PNG and SVG, stored beside the content."""

from __future__ import annotations

import io

import segno
from sqlalchemy import update
from sqlalchemy.orm import Session

from arv.config import get_settings
from arv.db.models import ARContent, Job, utcnow
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, recording_or_discarding, register
from arv.jobs.queues import Queue
from arv.storage import Storage, get_storage

# Medium error correction survives a scratch or a fold in the print; the border is the quiet zone
# the QR standard asks for (four modules).
ERROR_CORRECTION = "m"
BORDER_MODULES = 4
PNG_MODULE_PX = 10


def qr_keys(content: ARContent) -> tuple[str, str]:
    """Where a content's QR code lives; fixed per content, so a second run overwrites the same files."""
    return qr_keys_of(content.unique_id)


def qr_keys_of(unique_id: str) -> tuple[str, str]:
    """The PNG and SVG keys of the QR code of the content whose public id is `unique_id`."""
    return f"qr/{unique_id}.png", f"qr/{unique_id}.svg"


def render_qr(url: str) -> tuple[bytes, bytes]:
    """The QR code of `url` as PNG bytes and SVG bytes."""
    code = segno.make(url, error=ERROR_CORRECTION, micro=False)
    png, svg = io.BytesIO(), io.BytesIO()
    code.save(png, kind="png", scale=PNG_MODULE_PX, border=BORDER_MODULES)
    code.save(svg, kind="svg", scale=PNG_MODULE_PX, border=BORDER_MODULES, xmldecl=True)
    return png.getvalue(), svg.getvalue()


def request_qr_code(session: Session, content: ARContent) -> str:
    """Queue the QR code of `content` in the caller's transaction."""
    return store.enqueue(session, QR_CODE, {"id": content.id}, company_id=content.company_id)


def viewer_url(base_url: str, content: ARContent) -> str:
    """The public page of `content` under the platform's public base URL."""
    return f"{base_url.rstrip('/')}/ar/{content.unique_id}"


def generate_qr_code(session: Session, storage: Storage, job: Job, *, base_url: str) -> JobOutcome:
    """Draw and store the QR code of the content named by `job`, and point the content at it."""
    content = session.get(ARContent, job.args["id"])
    if content is None:
        return JobOutcome({"superseded": True})
    public_url = viewer_url(base_url, content)
    png_key, svg_key = qr_keys(content)
    png, svg = render_qr(public_url)
    storage.put(png_key, png, "image/png")
    storage.put(svg_key, svg, "image/svg+xml")
    # A content deleted meanwhile matches nothing, and the files just written are deleted again.
    return recording_or_discarding(
        {"url": public_url, "png_key": png_key, "svg_key": svg_key},
        update(ARContent)
        .where(ARContent.id == content.id, ARContent.unique_id == content.unique_id)
        .values(qr_png_key=png_key, qr_svg_key=svg_key, updated_at=utcnow()),
        storage,
        png_key,
        svg_key,
    )


QR_CODE = register(
    JobKind(
        name="generate_qr_code",
        queue=Queue.DEFAULT,
        run=lambda session, job: generate_qr_code(
            session, get_storage(), job, base_url=get_settings().api_base_url
        ),
    )
)
