"""The three queues, each with its own workers, so a burst of compiles never delays an e-mail."""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    MARKERS = "markers"
    NOTIFICATIONS = "notifications"
    DEFAULT = "default"


QUEUES: tuple[Queue, ...] = tuple(Queue)
