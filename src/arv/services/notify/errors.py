"""How a channel says a message did not go: not now, never, or nobody can tell."""

from __future__ import annotations


class ChannelUnavailable(ConnectionError):
    """The channel could not take the message now and certainly did not send it; try again later.

    A ConnectionError, so the job base class retries it with backoff and jitter.
    """


class RetryAfter(ChannelUnavailable):
    """The channel asked us to wait `retry_after_s` seconds before the next try (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeliveryRefused(Exception):
    """The channel refused the message for good (address refused, chat not found, bot blocked)."""


class OutcomeUnknown(Exception):
    """The connection broke after the message was handed over: it may have arrived, so it is not
    sent again on its own (a person may resend it)."""
