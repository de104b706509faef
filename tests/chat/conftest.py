"""Fixtures for the chat buttons: fake Telegram and Slack APIs on loopback, linked people.

The fakes are the shared HTTP receivers (`tests.receivers`): real servers recording every
call Tradewatch makes (answerCallbackQuery, editMessageText, getUpdates, response_url)
and answering as the services do.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from alerts.models import Alert, Channel, Rule
from chat.models import ChatIdentity
from metrics.models import Source
from tests.factories import make_alert, make_user
from tests.receivers import Answer, Received, Receiver

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
WEBHOOK_SECRET = "a-webhook-secret-0123456789"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_WEBHOOK_PATH = "/services/T0001/B0002/secretXyZ9"
TELEGRAM_OK = Answer(200, b'{"ok": true, "result": true}')


@pytest.fixture
def services(settings: Settings) -> Iterator[Receiver]:
    """One fake for both services (each speaks on its own paths), answering `ok`."""
    fake = Receiver(TELEGRAM_OK).start()
    settings.TRADEWATCH_TELEGRAM_BASE_URL = fake.url
    settings.TRADEWATCH_SLACK_BASE_URL = fake.url
    settings.TRADEWATCH_PUBLIC_URL = "https://tradewatch.example"
    yield fake
    fake.stop()


def calls(fake: Receiver, method: str) -> list[dict[str, Any]]:
    """The bodies of the Bot API calls of `method` the fake received."""
    return [r.json() for r in fake.requests if r.path == f"/bot{BOT_TOKEN}/{method}"]


def slack_posts(fake: Receiver) -> list[Received]:
    return [r for r in fake.requests if r.path.startswith("/actions/")]


@pytest.fixture
def telegram(db: None, services: Receiver) -> Channel:
    channel = Channel(
        name="desk-telegram", kind="telegram", config={"chat_id": "-1001234", "buttons": "webhook"}
    )
    channel.secrets = {"bot_token": BOT_TOKEN, "webhook_secret": WEBHOOK_SECRET}
    channel.full_clean()
    channel.save()
    return channel


@pytest.fixture
def slack(db: None, services: Receiver) -> Channel:
    channel = Channel(name="desk-slack", kind="slack")
    channel.secrets = {
        "webhook_url": services.url + SLACK_WEBHOOK_PATH,
        "signing_secret": SIGNING_SECRET,
    }
    channel.full_clean()
    channel.save()
    return channel


@pytest.fixture
def alert(source: Source) -> Alert:
    rule = Rule.objects.create(name="Deep drawdown", metric="drawdown_pct")
    return make_alert(rule, source, severity=50, timeline=True)


def linked(username: str, group: str, *, service: str, account_id: str, name: str = "") -> User:
    user = make_user(username, groups=[group])
    ChatIdentity.objects.create(
        service=service,
        workspace="T0001" if service == "slack" else "",
        account_id=account_id,
        account_name=name,
        user=user,
    )
    return user


# --- what the services send -------------------------------------------------------------


def telegram_press(
    channel: Channel,
    data: str,
    *,
    user_id: int = 111,
    name: str = "olga",
    secret: str | None = WEBHOOK_SECRET,
) -> Any:
    """Telegram calling the channel's webhook with a press of the button carrying `data`."""
    update = {
        "update_id": 1000,
        "callback_query": {
            "id": "cbq-1",
            "from": {"id": user_id, "is_bot": False, "first_name": "Olga", "username": name},
            "message": {
                "message_id": 77,
                "chat": {"id": -1001234, "type": "supergroup"},
                "text": "[Firing] CRITICAL Deep drawdown on alpha-bot",
            },
            "chat_instance": "42",
            "data": data,
        },
    }
    headers: dict[str, Any] = (
        {} if secret is None else {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret}
    )
    return APIClient().post(
        f"/api/v1/chat/telegram/{channel.pk}/",
        orjson.dumps(update),
        content_type="application/json",
        **headers,
    )


def slack_sign(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Slack's signature, computed here as Slack documents it (independently of the SDK)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_post(
    channel: Channel,
    form: dict[str, str],
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    """Slack posting `form`, signed with the channel's secret unless told otherwise."""
    body = urlencode(form).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    return APIClient().post(
        f"/api/v1/chat/slack/{channel.pk}/",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=str(timestamp),
        HTTP_X_SLACK_SIGNATURE=signature or slack_sign(body, timestamp),
    )


def slack_press(
    channel: Channel, fake: Receiver, value: str, *, user_id: str = "U0OLGA", **signing: Any
) -> Any:
    """Slack posting a press of the button with `value`, its response_url on the fake."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "olga", "team_id": "T0001"},
        "team": {"id": "T0001", "domain": "desk"},
        "response_url": fake.url + "/actions/T0001/1234/resp-token",
        "actions": [{"action_id": value.split(":")[1], "value": value, "type": "button"}],
    }
    return slack_post(channel, {"payload": orjson.dumps(payload).decode()}, **signing)
