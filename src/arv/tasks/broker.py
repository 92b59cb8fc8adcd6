"""The broker as ARV uses it: a connection that fails fast, queue lengths, and the job publisher."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import structlog
from celery import Celery
from kombu import Connection

from arv.jobs.publisher import Wakeup
from arv.jobs.queues import QUEUES

log = structlog.get_logger(__name__)


@contextmanager
def broker_connection(app: Celery) -> Iterator[Connection]:
    """A pooled broker connection that fails at once when the broker is down, instead of entering
    kombu's reconnect loop: callers (an upload, the sweep, /healthz) have a better plan than waiting."""
    with app.pool.acquire(block=True, timeout=10) as conn:
        conn.ensure_connection(max_retries=0)
        yield conn


def queue_lengths(app: Celery) -> dict[str, int | None]:
    """Messages waiting in each queue, or None for every queue when the broker cannot be reached.

    A declaration, not a passive one: kombu's Redis transport answers a passive declaration with the
    key's existence, which it checks without the `global_keyprefix` (and an empty queue has no key),
    while the count itself goes through the prefixed client. Declaring an existing queue changes
    nothing.
    """
    try:
        with broker_connection(app) as conn:
            channel = conn.default_channel
            return {queue: channel.queue_declare(queue=queue, durable=True).message_count for queue in QUEUES}
    except Exception as exc:  # noqa: BLE001 - unknown lengths only mean "republish what is stale"
        log.warning("broker.unreachable", error=str(exc))
        return {queue: None for queue in QUEUES}


def wakeup_sender(app: Celery):  # type: ignore[no-untyped-def]
    """The job layer's publisher for `app`: each wake-up once, over one connection."""

    def send(wakeups: Sequence[Wakeup]) -> int:
        """Returns how many were sent; a broker that is down is logged, not raised. No kombu retries
        (a down broker must not stall an upload), and no result backend (`ignore_result`): the job
        row holds the outcome, and subscribing to a Redis result channel that is down would block."""
        sent = 0
        try:
            with broker_connection(app) as connection, connection.Producer() as producer:
                for wakeup in wakeups:
                    app.send_task(
                        wakeup.task_name,
                        args=[wakeup.job_id],
                        task_id=wakeup.job_id,
                        queue=wakeup.queue,
                        routing_key=wakeup.queue,
                        retry=False,
                        ignore_result=True,
                        producer=producer,
                    )
                    sent += 1
        except Exception as exc:  # noqa: BLE001 - any broker failure means "publish later"
            log.warning("job.publish_failed", sent=sent, unsent=len(wakeups) - sent, error=str(exc))
        return sent

    return send
