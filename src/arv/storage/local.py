"""Storage in a local folder, with HMAC-signed, expiring download links served by the API."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from arv.private_files import private_dir
from arv.storage.base import ObjectNotFound, Storage, StorageError, StoredObject, guess_content_type

# The API route that serves signed local downloads (see arv.api.routes.files).
DOWNLOAD_ROUTE = "/files/"
# Files this backend writes beside the objects, which a listing leaves out: a put's temporary file
# (renamed onto its key when complete) and the health probe.
UPLOAD_TEMP_PREFIX = ".upload-"
HEALTH_PROBE = ".healthcheck"
# Bytes copied at a time when a file is stored or read whole.
COPY_CHUNK_BYTES = 1 << 20
# The longest file name the common file systems take.
MAX_NAME_BYTES = 255


class LocalStorage(Storage):
    """Objects as files below `root`; writes are atomic (temporary file, then rename).

    Parameters: `root` folder, `signing_key` for download links, `base_url` of the API serving them.
    """

    def __init__(self, *, root: str | os.PathLike[str], signing_key: bytes, base_url: str) -> None:
        self.root = Path(root).resolve()
        self.signing_key = signing_key
        self.base_url = base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        # No file name holds a NUL (the OS refuses it with ValueError) or is longer than 255 bytes.
        if "\x00" in key or any(len(part.encode()) > MAX_NAME_BYTES for part in key.split("/")):
            raise ObjectNotFound(f"invalid key {key[:300]!r}")
        try:
            path = (self.root / key).resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # a name too long, a symlink loop
            raise ObjectNotFound(f"invalid key {key!r}") from exc
        if self.root not in path.parents:
            raise ObjectNotFound(f"invalid key {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._write(key, lambda out: out.write(data))

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        def copy(out: BinaryIO) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out, COPY_CHUNK_BYTES)

        self._write(key, copy)

    def _write(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        """Write the object under `key` whole or not at all: `fill` writes a temporary file beside it,
        which is renamed onto the key once complete (and removed if anything fails)."""
        target = self._path(key)
        try:
            if not target.parent.is_dir():
                private_dir(target.parent)
            # mkstemp makes the file 0600, and the rename keeps the mode.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=UPLOAD_TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    fill(out)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc

    def get_file(self, key: str, path: Path) -> None:
        try:
            with open(self._path(key), "rb") as source, open(path, "wb") as out:
                shutil.copyfileobj(source, out, COPY_CHUNK_BYTES)
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_objects(
        self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000
    ) -> list[StoredObject]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        found: list[StoredObject] = []
        try:
            self._list_folder(self.root, "", prefix, start_after or "", limit, found)
        except OSError as exc:
            raise StorageError(f"cannot list {self.root}: {exc}") from exc
        return found

    def _list_folder(
        self, folder: Path, base: str, prefix: str, after: str, limit: int, found: list[StoredObject]
    ) -> None:
        """Append the objects below `folder`, whose keys all start with `base`, in key order, until
        `found` holds `limit`. Only one folder's names are in memory at a time per level."""
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return  # nothing stored yet, or a folder emptied and removed during the walk
        # A folder sorts as its name plus "/", the character every key below it goes on with: walking
        # the entries in that order yields the keys in the order of the whole strings, as S3 lists them.
        named = [
            (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
            for entry in entries
        ]
        named.sort(key=lambda pair: pair[0])
        for name, entry in named:
            key = base + name
            if name.endswith("/"):
                outside_prefix = not (key.startswith(prefix) or prefix.startswith(key))
                # Every key below sorts at or before `after` unless `after` itself lies below.
                all_listed = after >= key and not after.startswith(key)
                if not (outside_prefix or all_listed):
                    self._list_folder(Path(entry.path), key, prefix, after, limit, found)
            elif (
                key > after
                and key.startswith(prefix)
                and not name.startswith((UPLOAD_TEMP_PREFIX, HEALTH_PROBE))
                and entry.is_file(follow_symlinks=False)
            ):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since the folder was read
                found.append(StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
            if len(found) >= limit:
                return

    def file_path(self, key: str) -> Path:
        """The file behind `key`, for the API's download route."""
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self.signing_key, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str) -> bool:
        # compare_digest takes str only when it is ASCII; a signature is hex, so anything else is wrong.
        if not signature.isascii():
            return False
        return expires >= time.time() and hmac.compare_digest(self.signature(key, expires), signature)

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        expires = int(time.time()) + expires_in
        query = {"expires": expires, "signature": self.signature(key, expires)}
        return f"{self.base_url}{DOWNLOAD_ROUTE}{quote(key)}?{urlencode(query)}"

    def check(self) -> None:
        try:
            private_dir(self.root)
            probe = self.root / HEALTH_PROBE
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise StorageError(f"storage folder {self.root} is not writable: {exc}") from exc

    @staticmethod
    def content_type_of(path: Path) -> str:
        return guess_content_type(path.name)
