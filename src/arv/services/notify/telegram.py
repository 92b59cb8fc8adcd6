"""The Telegram channel: the Bot API's `sendMessage` over httpx, with its answers sorted into retry,
wait (429 `retry_after`), refused for good (400 chat not found, 403 bot blocked) and unknown outcome."""

from __future__ import annotations

import threading

import httpx

from arv.config import Settings
from arv.services.notify.errors import ChannelUnavailable, DeliveryRefused, OutcomeUnknown, RetryAfter
from arv.services.notify.messages import RenderedMessage
from arv.services.notify.ratelimit import Limit

# Telegram refuses longer texts; the text is cut there rather than the message lost.
MAX_TEXT_CHARS = 4096

_clients: dict[tuple[str, float], httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(base_url: str, timeout_s: float) -> httpx.Client:
    # One pooled client per process and API address: connections are reused across deliveries.
    key = (base_url, timeout_s)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = httpx.Client(base_url=base_url, timeout=timeout_s)
        return client


class TelegramChannel:
    """Sends with the bot `ARV_TELEGRAM_BOT_TOKEN` at `ARV_TELEGRAM_API_URL`; all workers together send
    at most `telegram_rate_per_s` messages a second, and one per `telegram_chat_interval_s` to a chat."""

    name = "telegram"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def limits(self, recipient: str) -> list[Limit]:
        return [
            # At most a few sends on their way at once: late ones cannot pile onto the regular flow
            # beyond that, so Telegram sees at most rate + in-flight messages in any second.
            Limit(
                "telegram",
                1.0 / self.settings.telegram_rate_per_s,
                max_in_flight=self.settings.telegram_max_in_flight,
            ),
            # Counted from the end of the previous send to the chat: however late a request reaches
            # Telegram, two messages to one chat arrive at least the interval apart.
            Limit(
                f"telegram:chat:{recipient}", self.settings.telegram_chat_interval_s, after_previous_send=True
            ),
        ]

    def send(self, recipient: str, message: RenderedMessage, *, delivery_id: int) -> None:
        settings = self.settings
        if not settings.telegram_bot_token:
            raise DeliveryRefused(
                "Telegram is not configured on this server (ARV_TELEGRAM_BOT_TOKEN is not set)"
            )
        base_url = f"{settings.telegram_api_url.rstrip('/')}/bot{settings.telegram_bot_token}"
        # Plain text, no `parse_mode`: Telegram shows names with <, &, * or _ as written, so there is
        # nothing to escape (under HTML or Markdown a stray one would refuse the whole message).
        body = {
            "chat_id": recipient,
            "text": message.chat_text[:MAX_TEXT_CHARS],
            "disable_web_page_preview": True,
        }
        try:
            response = _client(base_url, settings.telegram_timeout_s).post("/sendMessage", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ChannelUnavailable(f"cannot reach the Telegram Bot API: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise OutcomeUnknown(
                f"the Telegram Bot API did not answer after the message was sent ({exc!r}); "
                "it may have arrived"
            ) from exc
        _check_answer(response)


def _check_answer(response: httpx.Response) -> None:
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code == 200 and answer.get("ok") is True:
        return
    description = answer.get("description") or response.text[:200] or response.reason_phrase
    reason = f"Telegram answered {response.status_code}: {description}"
    if response.status_code == 429:
        retry_after = (answer.get("parameters") or {}).get("retry_after")
        if retry_after is None:
            retry_after = response.headers.get("Retry-After", 1)
        raise RetryAfter(reason, float(retry_after))
    if response.status_code >= 500:
        raise ChannelUnavailable(reason)
    # 400 chat not found, 401 bad token, 403 bot blocked or kicked: sending again cannot help.
    raise DeliveryRefused(reason)
