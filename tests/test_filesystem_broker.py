"""The embedded broker hands every reader whole messages, each to exactly one reader, under load."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import Counter
from pathlib import Path
from queue import Empty
from typing import Any

from kombu import Connection

from arv.tasks.filesystem_broker import TRANSPORT

QUEUE = "burst"
WRITERS = 6
READERS = 4
PER_WRITER = 150


def folders(root: Path) -> dict[str, str]:
    """The transport options ARV uses, under `root` (a data folder's `broker`): one queue folder that
    every process sends to and reads from."""
    from arv.config import Settings
    from arv.tasks.app import broker_options

    assert root.name == "broker"
    settings = Settings(data_dir=root.parent, filesystem_poll_interval_s=0.001)
    return broker_options(settings)  # type: ignore[return-value]


def body(writer: int, n: int) -> dict[str, Any]:
    """A message big enough that writing it takes a while, with a digest that shows it arrived whole."""
    text = os.urandom(8 * 1024 + 97 * n % 4096).hex()
    return {"id": f"{writer}-{n}", "text": text, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def write(transport: str, options: dict[str, Any], writer: int) -> None:
    with Connection("filesystem://", transport=transport, transport_options=options) as conn:
        queue = conn.SimpleQueue(QUEUE)
        for n in range(PER_WRITER):
            queue.put(body(writer, n), serializer="json")


def read(transport: str, options: dict[str, Any], writers_done: Any, results: Any) -> None:
    ids: list[str] = []
    errors: list[str] = []
    with Connection("filesystem://", transport=transport, transport_options=options) as conn:
        queue = conn.SimpleQueue(QUEUE)
        while True:
            try:
                message = queue.get(block=True, timeout=0.5)
            except Empty:
                if writers_done.is_set():
                    break
                continue
            except Exception as exc:  # noqa: BLE001 - a reader that breaks is what the test looks for
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            got = message.payload
            if hashlib.sha256(got["text"].encode()).hexdigest() != got["sha256"]:
                errors.append(f"message {got['id']} arrived changed")
            ids.append(got["id"])
            message.ack()
    results.put((ids, errors))


def publish_while_consuming(transport: str, root: Path) -> tuple[Counter[str], list[str], list[str]]:
    """WRITERS processes publish PER_WRITER messages each while READERS processes consume them.
    Returns how often each message was read, the readers' errors, and the files left unreadable."""
    options = folders(root)
    # The queue is declared (bound to its exchange) once, before the burst, as a running platform has it.
    with Connection("filesystem://", transport=transport, transport_options=options) as conn:
        conn.SimpleQueue(QUEUE).close()
    ctx = multiprocessing.get_context("spawn")
    writers_done = ctx.Event()
    results = ctx.Queue()
    readers = [
        ctx.Process(target=read, args=(transport, options, writers_done, results)) for _ in range(READERS)
    ]
    writers = [ctx.Process(target=write, args=(transport, options, w)) for w in range(WRITERS)]
    for process in readers + writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
    writers_done.set()
    seen: Counter[str] = Counter()
    errors: list[str] = []
    for _ in readers:
        ids, reader_errors = results.get(timeout=120)
        seen.update(ids)
        errors += reader_errors
    for process in readers:
        process.join(timeout=30)
    unreadable = sorted(p.name for p in (root / "processed" / "unreadable").glob("*"))
    return seen, errors, unreadable


def test_concurrent_writers_and_readers_see_every_message_whole_exactly_once(tmp_path: Path) -> None:
    seen, errors, unreadable = publish_while_consuming(TRANSPORT, tmp_path / "broker")
    assert errors == []
    assert unreadable == []
    expected = {f"{w}-{n}" for w in range(WRITERS) for n in range(PER_WRITER)}
    assert set(seen) == expected
    assert [i for i, count in seen.items() if count != 1] == []
    # Nothing is left behind: no half-written file and no unread message.
    assert sorted(os.listdir(tmp_path / "broker" / "queue")) == []


def test_a_file_that_cannot_be_decoded_is_set_aside_and_the_next_message_is_read(tmp_path: Path) -> None:
    options = folders(tmp_path / "broker")
    # A queue name of its own: kombu remembers bindings per process, whatever the folders.
    name = "mixed"
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        # Sorted first, so the reader meets it before the good message.
        (tmp_path / "broker" / "queue" / f"0_broken.{name}.msg").write_text('{"body": "half a mes')
        queue.put({"id": "good"}, serializer="json")
        message = queue.get(block=True, timeout=5)
        assert message.payload == {"id": "good"}
        message.ack()
    assert [p.name for p in (tmp_path / "broker" / "processed" / "unreadable").iterdir()] == [
        f"0_broken.{name}.msg"
    ]
    assert os.listdir(tmp_path / "broker" / "queue") == []
