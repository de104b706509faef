"""Telegram's side of the buttons: verifying the webhook, reading updates, answering.

An update is a button press (`callback_query`) or a message; Halt asks to confirm
first (Telegram has no confirmation dialog, Slack's buttons have their own); a message `/link CODE`
(or `/start CODE`, from a `t.me/<bot>?start=CODE` link) links the sender's account. Both
the webhook view and the poller hand each update to `update_handle`, which acts and then
answers through the Bot API: `answerCallbackQuery` (the toast on the presser's phone)
and `editMessageText` (the message shows the alert as it stands, who did what, and the
buttons still useful).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from alerts.channels.buttons import Action, Press, press_data, press_read
from alerts.channels.telegram import TelegramChannel
from alerts.models import Alert, Channel

from .actions import Outcome, alert_message, done_lines, press_act
from .linking import LinkRefused, identity_find, link_code_redeem, linked_words
from .models import Service

logger = logging.getLogger(__name__)

# Telegram shows at most 200 characters in a callback query's answer.
_ANSWER_CHARS = 200
_LINK_COMMANDS = ("/link", "/start")
_LINK_HOW = (
    "Send /link CODE, with the code from Tradewatch's admin (Chat accounts → Link my chat account)."
)


def telegram_channel(channel_id: int) -> Channel | None:
    """The Telegram channel with this id, or None."""
    return Channel.objects.filter(pk=channel_id, kind=Channel.Kind.TELEGRAM).first()


def webhook_secret_matches(channel: Channel, given: str | None) -> bool:
    """Whether `given` is the channel's webhook secret (compared in constant time)."""
    secret = channel.secrets.get("webhook_secret", "")
    return bool(secret) and given is not None and hmac.compare_digest(secret, given)


def update_handle(channel: Channel, update: Any) -> None:
    """Act on one update and answer it; updates that are not for Tradewatch are ignored."""
    if not isinstance(update, dict):
        return
    kind = TelegramChannel(channel.config, channel.secrets)
    query = update.get("callback_query")
    message = update.get("message")
    if isinstance(query, dict):
        _press_handle(kind, query)
    elif isinstance(message, dict):
        _message_handle(kind, message)


def _account(sender: Any) -> tuple[str, str] | None:
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), int):
        return None
    return str(sender["id"]), str(sender.get("username") or "")


def _press_handle(kind: TelegramChannel, query: dict[str, Any]) -> None:
    press = press_read(query.get("data"))
    account = _account(query.get("from"))
    if press is None or account is None or not isinstance(query.get("id"), str):
        return
    if press.action in (Action.HALT, Action.HALT_CANCELLED):
        _halt_ask(kind, query, press)
        return
    if press.action == Action.HALT_CONFIRMED:
        press = Press(Action.HALT, press.alert_id)
    account_id, _ = account
    identity = identity_find(service=Service.TELEGRAM, workspace="", account_id=account_id)
    outcome = press_act(press=press, identity=identity, service=Service.TELEGRAM)
    _call(
        kind,
        "answerCallbackQuery",
        {
            "callback_query_id": query["id"],
            "text": outcome.text[:_ANSWER_CHARS],
            # A refusal stays on screen until dismissed; a success is a passing toast.
            "show_alert": outcome.refused,
        },
    )
    shown = query.get("message")
    if outcome.alert is not None and isinstance(shown, dict):
        _message_edit(kind, shown, outcome)


def _halt_ask(kind: TelegramChannel, query: dict[str, Any], press: Press) -> None:
    """Halt asks first (stopping a bot is one tap too easy); Cancel brings the buttons back.

    Nothing changes here: the confirmation is the press that acts, with its checks.
    """
    alert = Alert.objects.select_related("source", "rule").filter(pk=press.alert_id).first()
    answer = {"callback_query_id": query["id"]}
    if alert is None:
        _call(kind, "answerCallbackQuery", {**answer, "text": f"Alert {press.alert_id} no "
              "longer exists.", "show_alert": True})  # fmt: skip
        return
    if press.action == Action.HALT:
        text = f"Halt {alert.source.name}? Confirm with the button."
        keyboard = {
            "inline_keyboard": [
                [{"text": f"Yes, halt {alert.source.name}"[:64],
                  "callback_data": press_data(Action.HALT_CONFIRMED, alert.pk)}],
                [{"text": Action.HALT_CANCELLED.label,
                  "callback_data": press_data(Action.HALT_CANCELLED, alert.pk)}],
            ]
        }  # fmt: skip
    else:
        text = "Not halted."
        keyboard = kind.keyboard(alert_message(alert)) or {"inline_keyboard": []}
    _call(kind, "answerCallbackQuery", {**answer, "text": text, "show_alert": False})
    shown = query.get("message")
    if isinstance(shown, dict) and isinstance(shown.get("chat"), dict):
        _call(
            kind,
            "editMessageReplyMarkup",
            {
                "chat_id": shown["chat"].get("id"),
                "message_id": shown.get("message_id"),
                "reply_markup": keyboard,
            },
        )


def _message_edit(kind: TelegramChannel, shown: dict[str, Any], outcome: Outcome) -> None:
    chat = shown.get("chat")
    if not isinstance(chat, dict) or not isinstance(shown.get("message_id"), int):
        return
    assert outcome.alert is not None
    message = alert_message(outcome.alert)
    body: dict[str, Any] = {
        "chat_id": chat.get("id"),
        "message_id": shown["message_id"],
        "text": TelegramChannel.text(message, done_lines(outcome.alert)),
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
        # No buttons left (resolved): an empty keyboard removes them.
        "reply_markup": kind.keyboard(message) or {"inline_keyboard": []},
    }
    _call(kind, "editMessageText", body)


def _message_handle(kind: TelegramChannel, message: dict[str, Any]) -> None:
    text = message.get("text")
    account = _account(message.get("from"))
    chat = message.get("chat")
    if not isinstance(text, str) or account is None or not isinstance(chat, dict):
        return
    words = text.split()
    # "/link@tradewatch_bot CODE" in groups names the bot.
    command = words[0].split("@", 1)[0].lower() if words else ""
    if command not in _LINK_COMMANDS or len(words) != 2:
        if command == "/link":
            _call(kind, "sendMessage", {"chat_id": chat.get("id"), "text": _LINK_HOW})
        return
    account_id, name = account
    try:
        identity = link_code_redeem(
            code=words[1], service=Service.TELEGRAM, workspace="", account_id=account_id,
            account_name=name,
        )  # fmt: skip
    except LinkRefused as exc:
        reply = str(exc)
    else:
        reply = linked_words(identity)
    _call(kind, "sendMessage", {"chat_id": chat.get("id"), "text": reply})


def _call(kind: TelegramChannel, method: str, body: dict[str, Any]) -> None:
    # The action is done whatever Telegram answers: a failed answer is logged, not retried.
    result = kind.call(method, body)
    if not result.ok and "message is not modified" not in result.error:
        logger.warning("Telegram %s failed: %s %s", method, result.error, result.answer[:200])
