"""Object storage: one small interface, a local folder and S3-compatible implementations."""

from __future__ import annotations

from functools import lru_cache

from arv.config import Settings, get_settings
from arv.private_files import private_file, write_private
from arv.storage.base import ObjectNotFound, Storage, StorageError, StoredObject, new_key


def storage_from_settings(settings: Settings) -> Storage:
    """The storage the settings name: `file:///path` or `s3://bucket`."""
    url = settings.resolved_storage_url
    if url.startswith("file://"):
        from arv.storage.local import LocalStorage

        return LocalStorage(
            root=url[len("file://") :],
            signing_key=settings_signing_key(settings),
            base_url=settings.api_base_url,
        )
    if url.startswith("s3://"):
        from arv.storage.s3 import S3Storage

        return S3Storage(
            bucket=url[len("s3://") :].strip("/"),
            endpoint_url=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
        )
    raise ValueError(f"ARV_STORAGE_URL must start with file:// or s3://, not {url!r}")


def settings_signing_key(settings: Settings) -> bytes:
    """The key that signs local download links: ARV_SECRET_KEY, or one generated once into data_dir."""
    if settings.secret_key:
        return settings.secret_key.encode()
    import secrets

    path = settings.resolved_data_dir / "secret_key"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32).encode())
    # An older install's world-readable key is closed too.
    return private_file(path).read_text().strip().encode()


@lru_cache
def get_storage() -> Storage:
    return storage_from_settings(get_settings())


__all__ = [
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StoredObject",
    "get_storage",
    "new_key",
    "storage_from_settings",
]
