"""The storage interface every backend implements, and how keys are made."""

from __future__ import annotations

import mimetypes
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class StorageError(Exception):
    """A storage backend failed in a way that may pass (network, server); worth retrying."""


class ObjectNotFound(StorageError):
    """The key names no object."""


def new_key(prefix: str, suffix: str = "") -> str:
    """An unguessable key under `prefix`, e.g. ``images/3f…a1.jpg``."""
    return f"{prefix.strip('/')}/{secrets.token_urlsafe(24)}{suffix}"


# Types a browser shows but never runs, served inline (the viewer's <video> and <img> take any, but a
# person opening a link sees the picture); anything else (SVG, HTML, unknown) is an attachment, so a
# stored file can never open as a page.
INLINE_TYPES = ("image/jpeg", "image/png", "image/webp", "video/", "audio/", "application/octet-stream")


def guess_content_type(key: str) -> str:
    """The media type of an object from its key's suffix (every key ARV makes has one)."""
    return mimetypes.guess_type(key.rsplit("/", 1)[-1])[0] or "application/octet-stream"


def content_disposition(key: str, content_type: str, filename: str | None = None) -> str:
    """The Content-Disposition of a download: inline for the types above, else attachment, with a
    file name of safe characters only (`filename`, or the key's last part)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", filename or key.rsplit("/", 1)[-1]).lstrip(".") or "download"
    inline = filename is None and content_type.startswith(INLINE_TYPES)
    return f'{"inline" if inline else "attachment"}; filename="{name}"'


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing sees it: its key, its size in bytes, and when it was last written (UTC)."""

    key: str
    size: int
    last_modified: datetime


class Storage(ABC):
    """Immutable objects under string keys."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any object there."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under `key`; ObjectNotFound when there are none."""

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` under `key`, streamed: a video of hundreds of megabytes is never
        held in memory whole."""

    @abstractmethod
    def get_file(self, key: str, path: Path) -> None:
        """Write the object under `key` to the file `path`, streamed; ObjectNotFound when there is none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_objects(
        self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000
    ) -> list[StoredObject]:
        """Up to `limit` objects whose keys start with `prefix` and sort after `start_after`, in key order.

        Keys sort by code point (S3's UTF-8 byte order). Fewer than `limit` come back only when no more
        remain, so a caller pages on by passing the last key it got as `start_after`.
        """

    @abstractmethod
    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A URL anyone holding it may GET for `expires_in` seconds."""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError when the backend cannot be reached (for /healthz)."""
