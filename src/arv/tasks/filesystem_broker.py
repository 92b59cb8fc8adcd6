"""The embedded broker: kombu's filesystem transport, changed so a reader sees a whole message or none.

kombu's own transport creates the message file under its final name and then writes into it, so a
worker polling the folder can take the file in between and read nothing or half a message (a
`JSONDecodeError` that stops the worker). Here a message is written under a name no reader picks up
and renamed into place, and a reader claims a file by renaming it, both within one filesystem where
a rename is atomic. A file that still cannot be decoded is logged and set aside, not raised.

Select it with Celery's `broker_transport` setting (or kombu's `Connection(transport=...)`) set to
`TRANSPORT`. Besides kombu's options it reads `unreadable_folder` (default: `unreadable` inside the
processed folder). The processed folder is where readers claim files: it must be on the same
filesystem as the data folder.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import suppress
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

from arv.private_files import PRIVATE_FILE_MODE, private_dir

# What Celery's `broker_transport` setting names to use this transport.
TRANSPORT = "arv.tasks.filesystem_broker:Transport"

# A message being written carries this suffix: kombu's readers only take names ending in
# `.<queue>.msg`, so they never see it.
PARTIAL_SUFFIX = ".partial"

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear in the queue folder whole, by rename."""

    # kombu's virtual channel names the second argument `message`, its filesystem channel `payload`:
    # no signature matches both.
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        # The name keeps kombu's layout (time first, so a sorted listing is roughly first in, first out).
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with os.fdopen(
                os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE), "wb"
            ) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            Path(partial).unlink(missing_ok=True)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        super()._queue_bind(exchange, routing_key, pattern, queue)
        # kombu writes the exchange's table with the process umask: the owner's only, like the rest.
        with suppress(FileNotFoundError, PermissionError):
            self._exchange_file(exchange).chmod(PRIVATE_FILE_MODE)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = self._claim_folder / name
            try:
                # The rename is the claim: of several readers, exactly one moves the file.
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue
            try:
                raw = claimed.read_bytes()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {str(claimed)!r} from queue.") from exc
            try:
                message = loads(bytes_to_str(raw))
            except ValueError as exc:
                self._set_aside(claimed, exc)
                continue
            if not isinstance(message, dict):
                self._set_aside(claimed, TypeError(f"a {type(message).__name__}, not a message"))
                continue
            if not self.store_processed:
                claimed.unlink()
            return message
        raise Empty()

    def _set_aside(self, claimed: Path, reason: Exception) -> None:
        # One bad file must not stop the worker that found it, nor be retried forever by the others.
        private_dir(self._unreadable_folder)
        target = self._unreadable_folder / claimed.name
        os.replace(claimed, target)
        logger.error("unreadable broker message moved to %s: %s", target, reason)

    @cached_property
    def _claim_folder(self) -> Path:
        return private_dir(Path(self.processed_folder))

    @cached_property
    def _unreadable_folder(self) -> Path:
        return Path(
            self.transport_options.get("unreadable_folder") or Path(self.processed_folder) / "unreadable"
        )


class Transport(filesystem.Transport):
    """kombu's filesystem transport with `Channel` above."""

    Channel = Channel
