"""What ARV writes under its data folder is its owner's only: folders 0700, files 0600.

The `arv` command sets the process umask to 077 before anything else (`owner_only_umask`), so every
file any part makes (SQLite's -wal and -shm, Beat's state, the broker's messages, metrics) is private,
whether it runs under `arv run` or alone. The places that create the sensitive ones (the secret key,
the SQLite databases, the storage and broker folders) also set the modes themselves, for a process
that did not come through the command (a test, an embedding application).
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def owner_only_umask() -> None:
    os.umask(OWNER_ONLY_UMASK)


def _make_missing(path: Path) -> None:
    """Create `path` and any missing parent with mode 0700; leave existing folders as they are."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        with suppress(FileExistsError):  # another process made it meanwhile
            missing.mkdir(mode=PRIVATE_DIR_MODE)


def private_dir(path: Path) -> Path:
    """`path` as a folder of mode 0700 (one of ARV's own: the data folder, the storage root, a broker
    folder), with any missing parent created 0700 too. One that existed already (an older install) is
    closed as well; one that is not ours to change stays as it is."""
    _make_missing(path)
    with suppress(PermissionError):
        if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
            path.chmod(PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file of mode 0600: created empty when missing, its mode closed when it exists. Its
    folder is created when missing, never changed (a database may live in a folder of its own)."""
    _make_missing(path.parent)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    with suppress(PermissionError):
        if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
            path.chmod(PRIVATE_FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a temporary file, then rename), with mode 0600 from the start."""
    _make_missing(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # a leftover of a crashed write keeps its old mode otherwise
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
