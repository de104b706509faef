"""Polling Telegram for button presses, for channels with `buttons: poll`.

Where Telegram cannot reach Tradewatch (no public URL), a beat task asks each bot for its
updates (`getUpdates`, without waiting: `timeout` 0) every few seconds. A periodic task,
not a worker held in a long poll: it needs no process of its own, holds no worker slot
between runs, and survives restarts with the rest of the schedule; a press is answered
within the task's interval. Each bot is claimed by a conditional update of its
`TelegramPoll` row, so two workers never poll one bot at once (Telegram refuses
concurrent getUpdates), and the offset that confirms handled updates is kept there.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db.models import Q
from django.utils import timezone

from alerts.channels.telegram import TelegramChannel
from alerts.models import Channel

from .models import TelegramPoll
from .telegram import update_handle

logger = logging.getLogger(__name__)

# As long as the task may run (its time limit): past it, the worker that held it is gone.
LEASE_SECONDS = 150
UPDATES_PER_CALL = 20
_ANSWER_CHARS = 256 * 1024


def polled_channels() -> dict[int, Channel]:
    """One channel per bot among the Telegram channels that poll (bot id → channel)."""
    bots: dict[int, Channel] = {}
    for channel in Channel.objects.filter(kind=Channel.Kind.TELEGRAM).order_by("pk"):
        if channel.config.get("buttons") != "poll":
            continue
        token = channel.secrets.get("bot_token", "")
        bot_id = token.split(":", 1)[0]
        if bot_id.isdigit():
            bots.setdefault(int(bot_id), channel)
    return bots


def telegram_poll(*, now: datetime | None = None) -> int:
    """Ask every polling bot for its updates and handle them; how many were handled."""
    handled = 0
    for bot_id, channel in polled_channels().items():
        handled += _bot_poll(bot_id, channel, now or timezone.now())
    return handled


def _bot_poll(bot_id: int, channel: Channel, now: datetime) -> int:
    TelegramPoll.objects.get_or_create(bot_id=bot_id)
    claimed = TelegramPoll.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now), bot_id=bot_id
    ).update(lease_until=now + timedelta(seconds=LEASE_SECONDS))
    if claimed != 1:
        return 0  # another worker polls this bot now
    poll = TelegramPoll.objects.get(bot_id=bot_id)
    kind = TelegramChannel(channel.config, channel.secrets)
    error, handled = "", 0
    try:
        result = kind.call(
            "getUpdates",
            {
                "offset": poll.offset,
                "timeout": 0,
                "limit": UPDATES_PER_CALL,
                "allowed_updates": ["callback_query", "message"],
            },
            answer_chars=_ANSWER_CHARS,
        )
        updates = _updates(result.answer) if result.ok else []
        if not result.ok:
            error = f"{result.error} {result.answer[:200]}".strip()
        for update in updates:
            try:
                update_handle(channel, update)
            except Exception:  # one bad update must not stop the others, nor the offset
                logger.exception(
                    "Telegram update %s of bot %s failed", update.get("update_id"), bot_id
                )
            poll.offset = max(poll.offset, int(update["update_id"]) + 1)
            handled += 1
    finally:
        TelegramPoll.objects.filter(pk=poll.pk).update(
            offset=poll.offset, lease_until=None, polled_at=timezone.now(), last_error=error[:500]
        )
    if error:
        logger.warning("polling Telegram bot %s failed: %s", bot_id, error)
    return handled


def _updates(answer: str) -> list[dict[str, Any]]:
    try:
        body = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return []
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list):
        return []
    return [
        update
        for update in result
        if isinstance(update, dict) and isinstance(update.get("update_id"), int)
    ]
