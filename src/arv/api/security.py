"""Response headers that keep a browser from misusing what ARV serves, set in one middleware.

Every answer gets `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`. Anything that
is not a page (JSON, images, downloads) also gets a CSP that lets nothing run and sandboxes the answer,
so that a stored SVG or HTML opened from a link can never act as a page of this origin. A page sets
its own CSP (`viewer_page_headers`: the viewer's own scripts, the storage's media, the camera); a
page that sets none (the API docs) still cannot be framed and has every feature off. Every answer also
gets `X-Frame-Options: DENY`, for browsers that predate `frame-ancestors`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arv.config import Settings
from arv.storage import Storage

# Nothing loads, nothing runs, no form posts, no framing: for answers that are not pages.
NOT_A_PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
# A page with no policy of its own (Swagger UI at /docs loads its scripts from a CDN) is still never framed.
PAGE_FALLBACK_CSP = "frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
# Browser features, all off; a page that needs one names it (the viewer: the camera, for itself only).
PERMISSIONS_OFF = (
    "accelerometer",
    "ambient-light-sensor",
    "bluetooth",
    "browsing-topics",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "hid",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
)
# The inline handler of the viewer's reload buttons (templates/viewer.html), allowed by its hash.
VIEWER_INLINE_HANDLERS = ("location.reload()",)


def permissions_policy(*allowed_for_self: str) -> str:
    return ", ".join(
        f"{feature}=(self)" if feature in allowed_for_self else f"{feature}=()" for feature in PERMISSIONS_OFF
    )


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def storage_origin(storage: Storage) -> str | None:
    """The origin the storage's download links point at (S3's endpoint; the API itself for the local
    folder), read off a link it makes: right for AWS, MinIO and any addressing style."""
    return _origin(storage.download_url("csp-probe", expires_in=60))


def _hash_source(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


@dataclass(frozen=True)
class PageHeaders:
    """The headers of one page answer, and the nonce its inline <script> elements must carry."""

    nonce: str
    headers: dict[str, str]


def _sources(*sources: str | None) -> str:
    """Distinct sources, in order."""
    return " ".join(dict.fromkeys(s for s in sources if s))


@lru_cache(maxsize=8)
def _viewer_policy_template(cdn_base_url: str, media_origin: str | None) -> str:
    cdn = _origin(cdn_base_url) if cdn_base_url else None
    code = _sources("'self'", cdn)
    media = _sources("'self'", media_origin)
    connect = _sources("'self'", media_origin, cdn)
    handlers = _sources(*(_hash_source(h) for h in VIEWER_INLINE_HANDLERS))
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {code} 'nonce-{{nonce}}' 'unsafe-hashes' {handlers}",
            # MindAR creates its detector workers from blob: URLs of its own bundle.
            "worker-src 'self' blob:",
            # MindAR and three.js set inline styles on the elements they create.
            f"style-src {code} 'unsafe-inline'",
            f"img-src {media} data: blob:",
            f"media-src {media} blob:",
            # The content JSON and the marker (fetched, then handed to MindAR as a blob: URL).
            f"connect-src {connect} blob:",
            "font-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def viewer_page_headers(settings: Settings, storage: Storage) -> PageHeaders:
    """The AR page's headers: its scripts from the API (or the CDN), the import map by nonce, MindAR's
    detector workers from blob: URLs, the marker, video and poster from the storage's origin, the
    camera for this origin only. MindAR's bundle neither evaluates strings nor runs WebAssembly."""
    nonce = secrets.token_urlsafe(18)
    template = _viewer_policy_template(settings.viewer_cdn_base_url, storage_origin(storage))
    return PageHeaders(
        nonce,
        {
            "Content-Security-Policy": template.replace("{nonce}", nonce),
            "Permissions-Policy": permissions_policy("camera"),
        },
    )


class SecurityHeaders:
    """Adds the headers above to every HTTP answer; a header the route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                is_page = headers.get("content-type", "").startswith("text/html")
                defaults = {
                    "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY",
                    "Content-Security-Policy": PAGE_FALLBACK_CSP if is_page else NOT_A_PAGE_CSP,
                }
                if is_page:
                    defaults["Permissions-Policy"] = permissions_policy()
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
