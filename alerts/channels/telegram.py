"""Telegram channel: the Bot API's sendMessage, HTML-formatted."""

from __future__ import annotations

import dataclasses
import re
from html import escape
from typing import Any, ClassVar

import orjson
from django.conf import settings

from alerts.channels import formatting, http
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage

_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
# A numeric chat id (negative for groups and channels) or a public channel's @name.
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,})$")
_MESSAGE_CHARS = 4096


class TelegramChannel(ChannelKind):
    """Sends each notification to one chat through a bot.

    Config: `chat_id` (number, or `@channelname`). Secret: `bot_token` (from BotFather).
    """

    kind = "telegram"
    label = "Telegram"
    config_fields: ClassVar[tuple[str, ...]] = ("chat_id",)
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token",)

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """The token looks like a bot token; the chat id is a number or an @name."""
        errors: dict[str, str] = {}
        if not _TOKEN.match(secrets.get("bot_token", "")):
            errors["bot_token"] = "Must be a bot token as BotFather gives it (123456:ABC…)."  # noqa: S105 (a message)
        if not _CHAT_ID.match(str(config.get("chat_id", "")).strip()):
            errors["chat_id"] = "Must be a numeric chat id or a channel's @name."
        if errors:
            raise cls.invalid(errors)

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Send the message; Telegram's `ok: false` answers are failures, even with 200."""
        base = settings.TRADEWATCH_TELEGRAM_BASE_URL.rstrip("/")
        chat_id = str(self.config["chat_id"]).strip()
        body = {
            "chat_id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id,
            "text": self.text(message),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        result = http.post(
            f"{base}/bot{self.secrets['bot_token']}/sendMessage",
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        return _read_answer(result)

    @staticmethod
    def text(message: NotificationMessage) -> str:
        """The message in Telegram's HTML subset, every piece of alert text escaped."""
        alert = message.alert
        lines = [f"{formatting.emoji(message)} <b>{_text(formatting.title(message))}</b>"]
        if alert.get("message"):
            lines.append(_text(str(alert["message"])))
        lines.extend(
            f"<b>{_text(fact.label)}:</b> {_text(fact.value)}" for fact in formatting.facts(alert)
        )
        url = formatting.link(alert)
        if url:
            lines.append(f'<a href="{escape(url, quote=True)}">Open the alert</a>')
        if message.digest:
            lines.append("")
            lines.append(f"<b>{_text(formatting.digest_heading(message))}</b>")
            lines.extend(f"• {_text(formatting.digest_line(held))}" for held in message.digest)
        text = "\n".join(lines)
        if len(text) > _MESSAGE_CHARS:
            # Cutting HTML could leave a tag open, which Telegram refuses: fall back to
            # the title alone, which is short and whole.
            text = lines[0]
        return text


def _text(value: str) -> str:
    # Telegram's HTML knows only &lt; &gt; &amp; &quot; by name.
    return escape(value, quote=False)


def _read_answer(result: DeliveryResult) -> DeliveryResult:
    """Take Telegram's own verdict from its JSON answer where it gives one."""
    try:
        answer = orjson.loads(result.answer) if result.answer else None
    except orjson.JSONDecodeError:
        # A long success answer is cut at 500 characters and no longer parses.
        answer = None
    if not isinstance(answer, dict) or answer.get("ok") is not False:
        return result
    description = str(answer.get("description") or "no description")
    parameters = answer.get("parameters") or {}
    retry_after = result.retry_after
    if retry_after is None and isinstance(parameters.get("retry_after"), int | float):
        retry_after = float(parameters["retry_after"])
    details = dict(result.details)
    if "migrate_to_chat_id" in parameters:
        # A group became a supergroup: the operator must update chat_id.
        details["migrate_to_chat_id"] = parameters["migrate_to_chat_id"]
    if result.ok:
        # 200 with ok: false: Telegram took the request and refused the message.
        return dataclasses.replace(
            result,
            ok=False,
            error=f"Telegram refused the message: {description}",
            permanent=True,
            details=details,
        )
    return dataclasses.replace(
        result,
        error=f"Telegram answered {result.status}: {description}",
        retry_after=retry_after,
        details=details,
    )
