"""Slack, Discord and Telegram, each against a local receiver standing in for the service."""

from __future__ import annotations

import orjson
import pytest
from pytest_django.fixtures import Settings

from alerts.channels.discord import DiscordChannel
from alerts.channels.slack import SlackChannel
from alerts.channels.telegram import TelegramChannel
from tests.alerts.channels.receivers import Answer, Receiver, alert_payload, notification

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def chat_services(receiver: Receiver, settings: Settings) -> Receiver:
    settings.TRADEWATCH_SLACK_BASE_URL = receiver.url
    settings.TRADEWATCH_DISCORD_BASE_URL = receiver.url
    settings.TRADEWATCH_TELEGRAM_BASE_URL = receiver.url
    settings.TRADEWATCH_PUBLIC_URL = "https://tradewatch.example"
    return receiver


def test_it_posts_a_coloured_slack_message(chat_services: Receiver) -> None:
    url = chat_services.url + "/services/T0001/B0002/secretXyZ9"

    result = SlackChannel({}, {"webhook_url": url}).send(
        notification(message="Equity <fell> & kept falling")
    )

    assert result.ok
    [request] = chat_services.requests
    assert request.path == "/services/T0001/B0002/secretXyZ9"
    body = request.json()
    assert body["text"] == "[Firing] CRITICAL drawdown on alpha-bot"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#e53935"
    rendered = orjson.dumps(attachment["blocks"]).decode()
    assert "Equity &lt;fell&gt; &amp; kept falling" in rendered
    assert "<https://tradewatch.example/admin/alerts/alert/42/change/|Open the alert>" in rendered


def test_it_colours_a_resolved_slack_message_green(chat_services: Receiver) -> None:
    url = chat_services.url + "/services/T0001/B0002/secretXyZ9"

    SlackChannel({}, {"webhook_url": url}).send(notification("resolved"))

    assert chat_services.requests[0].json()["attachments"][0]["color"] == "#43a047"


def test_it_lists_the_digest_in_slack(chat_services: Receiver) -> None:
    url = chat_services.url + "/services/T0001/B0002/secretXyZ9"
    held = (alert_payload(rule="daily_loss", severity="ERROR", value=-1200),)

    SlackChannel({}, {"webhook_url": url}).send(notification("digest", digest=held))

    rendered = orjson.dumps(chat_services.requests[0].json()).decode()
    assert "1 more alert held back by the rate limit" in rendered
    assert "ERROR daily_loss on alpha-bot" in rendered


def test_it_posts_a_discord_embed(chat_services: Receiver) -> None:
    chat_services.answer(Answer(204, b""))
    url = chat_services.url + "/api/webhooks/1234567890/tokenXyZ9"

    result = DiscordChannel({}, {"webhook_url": url}).send(
        notification(severity="WARNING", message="@everyone look")
    )

    assert result.ok
    assert result.status == 204
    [request] = chat_services.requests
    assert request.path == "/api/webhooks/1234567890/tokenXyZ9"
    body = request.json()
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["color"] == 0xFFB300
    assert "[Firing] WARNING drawdown on alpha-bot" in embed["title"]
    assert embed["description"] == "@everyone look"
    assert embed["url"] == "https://tradewatch.example/admin/alerts/alert/42/change/"
    assert {"name": "Value", "value": "21.5", "inline": True} in embed["fields"]


def test_it_sends_escaped_html_to_telegram(chat_services: Receiver) -> None:
    chat_services.answer(Answer(200, b'{"ok": true, "result": {"message_id": 7}}'))

    result = TelegramChannel({"chat_id": "-1001234"}, {"bot_token": BOT_TOKEN}).send(
        notification(message="PnL <b>-5%</b> & falling")
    )

    assert result.ok
    [request] = chat_services.requests
    assert request.path == f"/bot{BOT_TOKEN}/sendMessage"
    body = request.json()
    assert body["chat_id"] == -1001234
    assert body["parse_mode"] == "HTML"
    assert "<b>[Firing] CRITICAL drawdown on alpha-bot</b>" in body["text"]
    assert "PnL &lt;b&gt;-5%&lt;/b&gt; &amp; falling" in body["text"]
    assert '<a href="https://tradewatch.example/admin/alerts/alert/42/change/">' in body["text"]


def test_it_fails_when_telegram_answers_200_with_ok_false(chat_services: Receiver) -> None:
    chat_services.answer(Answer(200, b'{"ok": false, "description": "Bad Request: no text"}'))

    result = TelegramChannel({"chat_id": "42"}, {"bot_token": BOT_TOKEN}).send(notification())

    assert not result.ok
    assert result.permanent
    assert "Bad Request: no text" in result.error
    assert BOT_TOKEN not in result.error


def test_it_reports_telegrams_description_on_a_4xx(chat_services: Receiver) -> None:
    chat_services.answer(
        Answer(
            400,
            b'{"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}',
        )
    )

    result = TelegramChannel({"chat_id": "42"}, {"bot_token": BOT_TOKEN}).send(notification())

    assert not result.ok
    assert result.permanent
    assert result.status == 400
    assert result.error == "Telegram answered 400: Bad Request: chat not found"


def test_it_takes_telegrams_retry_after_from_the_body(chat_services: Receiver) -> None:
    chat_services.answer(
        Answer(
            429,
            b'{"ok": false, "error_code": 429, "description": "Too Many Requests: retry '
            b'after 12", "parameters": {"retry_after": 12}}',
        )
    )

    result = TelegramChannel({"chat_id": "42"}, {"bot_token": BOT_TOKEN}).send(notification())

    assert not result.ok
    assert not result.permanent
    assert result.retry_after == 12
