"""Telegram buttons: the keyboard on notifications, presses through the webhook, answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.channels.telegram import TelegramChannel
from alerts.delivery import notification_message
from alerts.models import Alert, AlertTransition, Channel, Notification
from alerts.payloads import alert_payload
from core.audit_history import object_history
from metrics.control import trading_state
from metrics.models import TradingControl
from tests.alerts.channels.receivers import notification
from tests.chat.conftest import BOT_TOKEN, calls, linked, telegram_press
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db

Kind = AlertTransition.Kind


def test_the_sent_notification_carries_the_keyboard(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    row = Notification.objects.create(
        channel=telegram,
        alert=alert,
        event="firing",
        severity=alert.severity,
        payload=alert_payload(alert, rule_name="Deep drawdown", source_name="alpha-bot"),
        next_attempt_at=timezone.now(),
        created_at=timezone.now(),
    )
    kind = TelegramChannel(telegram.config, telegram.secrets)

    assert kind.send(notification_message(row)).ok

    [sent] = calls(services, "sendMessage")
    rows = sent["reply_markup"]["inline_keyboard"]
    assert [[button["text"] for button in row] for row in rows] == [
        ["Acknowledge 1 h", "Acknowledge until resolved"],
        ["Resolve", "Silence 1 h"],
        ["Halt the source"],
    ]
    assert rows[0][0]["callback_data"] == f"tw1:ack1h:{alert.pk}"
    assert rows[2][0]["callback_data"] == f"tw1:halt:{alert.pk}"


def test_no_keyboard_without_buttons_nor_on_resolved_alerts(services: Receiver) -> None:
    plain = TelegramChannel({"chat_id": "42"}, {"bot_token": BOT_TOKEN})
    polling = TelegramChannel({"chat_id": "42", "buttons": "poll"}, {"bot_token": BOT_TOKEN})

    plain.send(notification())
    polling.send(notification("resolved"))
    polling.send(notification("acknowledged"))

    first, resolved, acknowledged = calls(services, "sendMessage")
    assert "reply_markup" not in first
    assert "reply_markup" not in resolved
    texts = [b["text"] for row in acknowledged["reply_markup"]["inline_keyboard"] for b in row]
    assert texts == ["Resolve", "Silence 1 h", "Halt the source"]


def test_a_press_with_the_secret_acknowledges_and_the_message_says_who(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    olga = linked("olga", "Operator", service="telegram", account_id="111", name="olga_tg")

    answer = telegram_press(telegram, f"tw1:ack1h:{alert.pk}")

    assert answer.status_code == 200
    assert answer.json() == {"ok": True}
    alert.refresh_from_db()
    assert alert.acknowledged_by == olga
    assert alert.acknowledged_until is not None
    assert timedelta(minutes=59) < alert.acknowledged_until - timezone.now() <= timedelta(hours=1)
    step = alert.timeline.get(kind=Kind.ACKNOWLEDGED)
    assert step.actor == olga
    assert step.details["note"] == "via Telegram @olga_tg (111)"
    [toast] = calls(services, "answerCallbackQuery")
    assert toast == {
        "callback_query_id": "cbq-1",
        "show_alert": False,
        "text": "Acknowledged by olga for 1 h.",
    }
    [edit] = calls(services, "editMessageText")
    assert (edit["chat_id"], edit["message_id"]) == (-1001234, 77)
    assert "[Acknowledged] CRITICAL Deep drawdown on alpha-bot" in edit["text"]
    assert "✅ Acknowledged by olga via Telegram @olga_tg (111) at " in edit["text"]
    buttons = [b["text"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["Resolve", "Silence 1 h", "Halt the source"]


def test_a_second_press_changes_nothing(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="telegram", account_id="111")

    telegram_press(telegram, f"tw1:ack:{alert.pk}")
    telegram_press(telegram, f"tw1:ack:{alert.pk}")

    assert alert.timeline.filter(kind=Kind.ACKNOWLEDGED).count() == 1
    first, second = calls(services, "answerCallbackQuery")
    assert first["text"] == "Acknowledged by olga until resolved."
    assert second["text"] == "Acknowledged already by olga."


@pytest.mark.parametrize("secret", [None, "a-webhook-secret-0123456780", ""])
def test_a_wrong_or_missing_secret_is_refused_and_changes_nothing(
    telegram: Channel, alert: Alert, services: Receiver, secret: str | None
) -> None:
    linked("olga", "Operator", service="telegram", account_id="111")

    answer = telegram_press(telegram, f"tw1:resolve:{alert.pk}", secret=secret)

    assert answer.status_code == 403
    assert answer.json()["errors"][0]["field"] == "X-Telegram-Bot-Api-Secret-Token"
    alert.refresh_from_db()
    assert alert.is_open
    assert services.requests == []


def test_an_unknown_channel_is_404_and_a_channel_without_a_secret_refuses(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    assert telegram_press(Channel(pk=telegram.pk + 1000), "x").status_code == 404
    telegram.config = {"chat_id": "42", "buttons": "poll"}
    telegram.secrets = {"bot_token": BOT_TOKEN}
    telegram.save()
    assert telegram_press(telegram, f"tw1:resolve:{alert.pk}").status_code == 403
    alert.refresh_from_db()
    assert alert.is_open


def test_an_unlinked_account_is_told_and_nothing_changes(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="telegram", account_id="111")

    answer = telegram_press(telegram, f"tw1:resolve:{alert.pk}", user_id=999)

    assert answer.status_code == 200
    alert.refresh_from_db()
    assert alert.is_open
    assert list(alert.timeline.values_list("kind", flat=True)) == [Kind.FIRING]
    [toast] = calls(services, "answerCallbackQuery")
    assert toast["show_alert"] is True
    assert "not linked to a Tradewatch user" in toast["text"]
    assert calls(services, "editMessageText") == []


@pytest.mark.parametrize("data", ["tw1:ack1h", "tw1:resolve", "tw1:silence1h", "tw1:haltok"])
def test_a_viewer_is_refused_every_button(
    telegram: Channel, alert: Alert, services: Receiver, data: str
) -> None:
    linked("vic", "Viewer", service="telegram", account_id="111")

    telegram_press(telegram, f"{data}:{alert.pk}")

    alert.refresh_from_db()
    assert alert.is_open
    assert not alert.is_acknowledged
    assert list(alert.timeline.values_list("kind", flat=True)) == [Kind.FIRING]
    assert not alert.silences.exists()
    assert not alert.source.silences.exists()
    assert trading_state(alert.source_id).state == TradingControl.State.ACTIVE
    [toast] = calls(services, "answerCallbackQuery")
    assert toast["text"].startswith("vic, you need the permission to")
    assert toast["show_alert"] is True


def test_an_operator_halts_the_source_from_the_alert(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    olga = linked("olga", "Operator", service="telegram", account_id="111", name="olga_tg")

    telegram_press(telegram, f"tw1:halt:{alert.pk}")
    telegram_press(telegram, f"tw1:back:{alert.pk}")
    assert trading_state(alert.source_id).state == TradingControl.State.ACTIVE
    asked, cancelled = calls(services, "editMessageReplyMarkup")
    assert asked["reply_markup"]["inline_keyboard"] == [
        [{"text": "Yes, halt alpha-bot", "callback_data": f"tw1:haltok:{alert.pk}"}],
        [{"text": "Cancel", "callback_data": f"tw1:back:{alert.pk}"}],
    ]
    assert len(cancelled["reply_markup"]["inline_keyboard"]) == 3  # the buttons are back
    services.requests.clear()

    telegram_press(telegram, f"tw1:halt:{alert.pk}")
    telegram_press(telegram, f"tw1:haltok:{alert.pk}")
    telegram_press(telegram, f"tw1:haltok:{alert.pk}")

    state = trading_state(alert.source_id)
    assert state.state == TradingControl.State.HALTED
    control = TradingControl.objects.get(source=alert.source)
    assert (control.set_by, control.set_via, control.alert_id) == (olga, "telegram", alert.pk)
    assert "via Telegram @olga_tg (111)" in control.reason
    assert alert.timeline.filter(kind=Kind.TRADING_STATE, actor=olga).count() == 1
    assert {c.who for c in object_history(control)} == {"olga via Telegram @olga_tg (111)"}
    question, first, second = calls(services, "answerCallbackQuery")
    assert question["text"] == "Halt alpha-bot? Confirm with the button."
    assert first["text"] == "alpha-bot halted by olga."
    assert second["text"] == "alpha-bot is halted already."
    assert "⛔ Trading halted by olga via telegram" in calls(services, "editMessageText")[0]["text"]


def test_resolve_and_silence_record_the_chat_account(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    olga = linked("olga", "Operator", service="telegram", account_id="111", name="olga_tg")

    telegram_press(telegram, f"tw1:silence1h:{alert.pk}")
    telegram_press(telegram, f"tw1:silence1h:{alert.pk}")
    telegram_press(telegram, f"tw1:resolve:{alert.pk}")

    [silence] = alert.source.silences.all()
    assert silence.created_by == olga
    assert silence.reason.startswith("Silenced from Telegram @olga_tg (111) by olga")
    silenced = alert.timeline.get(kind=Kind.SILENCED)
    assert silenced.details["via"] == "Telegram @olga_tg (111)"
    [created] = [c for c in object_history(silence) if c.what == "silence"]
    assert (created.action, created.who) == ("created", "olga via Telegram @olga_tg (111)")
    alert.refresh_from_db()
    assert alert.resolved_by == olga
    assert alert.resolution == Alert.Resolution.BY_PERSON
    answers = [c["text"] for c in calls(services, "answerCallbackQuery")]
    assert answers[0] == "Silenced for 1 h by olga."
    assert answers[1].startswith("Silenced already until ")
    assert answers[2] == "Resolved by olga."
    last = calls(services, "editMessageText")[-1]
    assert last["reply_markup"] == {"inline_keyboard": []}
    assert "☑️ Resolved by olga via Telegram @olga_tg (111)" in last["text"]


def test_a_press_of_something_else_is_answered_200_and_ignored(
    telegram: Channel, alert: Alert, services: Receiver
) -> None:
    linked("olga", "Operator", service="telegram", account_id="111")

    assert telegram_press(telegram, "not-ours").status_code == 200
    assert telegram_press(telegram, f"tw1:explode:{alert.pk}").status_code == 200
    assert telegram_press(telegram, "tw1:resolve:99999999").status_code == 200

    alert.refresh_from_db()
    assert alert.is_open
    [toast] = calls(services, "answerCallbackQuery")
    assert toast["text"] == "Alert 99999999 no longer exists."


def test_the_channel_wants_the_webhook_secret_for_webhook_buttons() -> None:
    channel = Channel(name="t", kind="telegram", config={"chat_id": "42", "buttons": "webhook"})
    channel.secrets = {"bot_token": BOT_TOKEN}
    with pytest.raises(Exception, match="webhook_secret: Needed for buttons by webhook"):
        channel.full_clean()
    channel.config = {"chat_id": "42", "buttons": "always"}
    with pytest.raises(Exception, match="buttons: Must be webhook"):
        channel.full_clean()
    channel.config = {"chat_id": "42", "webhook_secret": "in-the-open-0123456789"}
    with pytest.raises(Exception, match="webhook_secret: a secret; give it with the secrets"):
        channel.full_clean()
