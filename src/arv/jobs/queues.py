"""The queues, each with its own workers, so a burst of one kind of work never delays another: compiles
never wait behind e-mails, and a burst of video transcodes never holds back a compile or an e-mail."""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    MARKERS = "markers"
    NOTIFICATIONS = "notifications"
    DEFAULT = "default"
    # Transcodes: CPU-bound and long (minutes for a 4K clip), so on their own queue and workers.
    VIDEOS = "videos"


QUEUES: tuple[Queue, ...] = tuple(Queue)
