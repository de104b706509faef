"""Telegram channel: the Bot API's sendMessage, HTML-formatted, with action buttons."""

from __future__ import annotations

import dataclasses
import re
from html import escape
from typing import Any, ClassVar

import orjson
from django.conf import settings

from alerts.channels import formatting, http
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage
from alerts.channels.buttons import Action, actions_for, press_data

_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
# A numeric chat id (negative for groups and channels) or a public channel's @name.
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,})$")
_MESSAGE_CHARS = 4096
# What Telegram accepts as a webhook's secret_token (setWebhook).
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
_HOOK_FORM = "16 to 256 letters, digits, _ or - (what setWebhook takes as secret_token)."
_HOOK_NEEDED = "Needed for buttons by webhook: the secret_token given to setWebhook."
# How the button presses reach Tradewatch: Telegram calls its webhook, or it polls.
BUTTONS = ("", "webhook", "poll")
# Buttons side by side, as a phone shows them.
_ROWS = (
    (Action.ACKNOWLEDGE_HOUR, Action.ACKNOWLEDGE),
    (Action.RESOLVE, Action.SILENCE_HOUR),
    (Action.HALT,),
)


class TelegramChannel(ChannelKind):
    """Sends each notification to one chat through a bot.

    Config: `chat_id` (number, or `@channelname`); `buttons`: how presses of the
    notifications' buttons reach Tradewatch, `webhook` (Telegram calls
    `/api/v1/chat/telegram/<channel id>/`, set with setWebhook and the `webhook_secret`)
    or `poll` (Tradewatch asks getUpdates, where no public URL exists); left out, the
    notifications carry no buttons. Secrets: `bot_token` (from BotFather) and, for
    `webhook`, `webhook_secret` (the setWebhook `secret_token`).
    """

    kind = "telegram"
    label = "Telegram"
    config_fields: ClassVar[tuple[str, ...]] = ("chat_id", "buttons")
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token", "webhook_secret")

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """The token looks like a bot token; the chat id is a number or an @name; buttons
        by webhook need the webhook's secret."""
        errors: dict[str, str] = {}
        if not _TOKEN.match(secrets.get("bot_token", "")):
            errors["bot_token"] = "Must be a bot token as BotFather gives it (123456:ABC…)."  # noqa: S105 (a message)
        if not _CHAT_ID.match(str(config.get("chat_id", "")).strip()):
            errors["chat_id"] = "Must be a numeric chat id or a channel's @name."
        buttons = config.get("buttons", "")
        if buttons not in BUTTONS:
            errors["buttons"] = (
                "Must be webhook (Telegram calls Tradewatch), poll (Tradewatch asks "
                "Telegram) or left out (no buttons)."
            )
        secret = secrets.get("webhook_secret", "")
        if secret and not _WEBHOOK_SECRET.match(secret):
            errors["webhook_secret"] = _HOOK_FORM
        elif buttons == "webhook" and not secret:
            errors["webhook_secret"] = _HOOK_NEEDED
        if errors:
            raise cls.invalid(errors)

    @property
    def buttons(self) -> str:
        """How presses arrive: "webhook", "poll", or "" (no buttons)."""
        value = self.config.get("buttons", "")
        return value if value in BUTTONS else ""

    def keyboard(self, message: NotificationMessage) -> dict[str, Any] | None:
        """The inline keyboard for `message`, or None when it carries no buttons."""
        actions = actions_for(message) if self.buttons else []
        if not actions:
            return None
        alert_id = int(message.alert["id"])
        rows = [
            [
                {"text": action.label, "callback_data": press_data(action, alert_id)}
                for action in row
                if action in actions
            ]
            for row in _ROWS
        ]
        return {"inline_keyboard": [row for row in rows if row]}

    def api_url(self, method: str) -> str:
        """The Bot API URL of `method` for this channel's bot (the token is in it)."""
        base = settings.TRADEWATCH_TELEGRAM_BASE_URL.rstrip("/")
        return f"{base}/bot{self.secrets['bot_token']}/{method}"

    def call(
        self, method: str, body: dict[str, Any], *, answer_chars: int = http.ANSWER_CHARS
    ) -> DeliveryResult:
        """Call a Bot API method; Telegram's `ok: false` answers are failures."""
        result = http.post(
            self.api_url(method),
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
            answer_chars=answer_chars,
        )
        return _read_answer(result)

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Send the message; Telegram's `ok: false` answers are failures, even with 200."""
        chat_id = str(self.config["chat_id"]).strip()
        body: dict[str, Any] = {
            "chat_id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id,
            "text": self.text(message),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        keyboard = self.keyboard(message)
        if keyboard is not None:
            body["reply_markup"] = keyboard
        return self.call("sendMessage", body)

    @staticmethod
    def text(message: NotificationMessage, done: tuple[str, ...] = ()) -> str:
        """The message in Telegram's HTML subset, every piece of alert text escaped.

        `done` are lines saying who did what from chat (shown after an action).
        """
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
        if done:
            lines.append("")
            lines.extend(_text(line) for line in done)
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
