"""The storage interface every backend implements, and how keys are made."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod


class StorageError(Exception):
    """A storage backend failed in a way that may pass (network, server); worth retrying."""


class ObjectNotFound(StorageError):
    """The key names no object."""


def new_key(prefix: str, suffix: str = "") -> str:
    """An unguessable key under `prefix`, e.g. ``images/3f…a1.jpg``."""
    return f"{prefix.strip('/')}/{secrets.token_urlsafe(24)}{suffix}"


class Storage(ABC):
    """Immutable objects under string keys."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any object there."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under `key`; ObjectNotFound when there are none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A URL anyone holding it may GET for `expires_in` seconds."""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError when the backend cannot be reached (for /healthz)."""
