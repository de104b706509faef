"""Linking a Telegram account with a code from the admin; presses fetched by polling."""

from __future__ import annotations

import re
from datetime import timedelta

import orjson
import pytest
import yaml
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert, Channel
from chat.linking import LinkRefused, link_code_issue, link_code_redeem
from chat.models import ChatIdentity, TelegramPoll
from chat.polling import telegram_poll
from chat.tasks import poll_telegram
from configuration.models import ChannelSecretReferences
from configuration.services import config_export
from core.audit_history import object_history
from tests.chat.conftest import BOT_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, calls, linked
from tests.factories import make_user
from tests.receivers import Answer, Receiver

pytestmark = pytest.mark.django_db


def send_message(channel: Channel, text: str, *, user_id: int = 111) -> int:
    update = {
        "update_id": 5,
        "message": {
            "message_id": 9,
            "from": {"id": user_id, "username": "olga_tg"},
            "chat": {"id": user_id, "type": "private"},
            "text": text,
        },
    }
    answer = APIClient().post(
        f"/api/v1/chat/telegram/{channel.pk}/",
        orjson.dumps(update),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=WEBHOOK_SECRET,
    )
    return int(answer.status_code)


def test_a_person_gets_a_code_in_the_admin_and_links_telegram_with_it(
    telegram: Channel, services: Receiver
) -> None:
    olga = make_user("olga", groups=["Operator"], is_staff=True)
    browser = Client()
    browser.force_login(olga)

    listed = browser.get("/admin/chat/chatidentity/")
    page = browser.post("/admin/chat/chatidentity/link/")

    assert "Link my chat account" in listed.content.decode()
    found = re.search(r'data-testid="link-code">([A-Z0-9]{8})<', page.content.decode())
    assert found is not None
    code = found.group(1)
    assert send_message(telegram, f"/link {code}") == 200
    assert send_message(telegram, f"/start {code}", user_id=666) == 200
    identity = ChatIdentity.objects.get()
    assert (identity.user, identity.account_id, identity.account_name) == (olga, "111", "olga_tg")
    assert identity.linked_with_code
    [history] = object_history(identity)
    assert history.who == "olga via Telegram account 111 with a code"
    first, second = (call["text"] for call in calls(services, "sendMessage"))
    assert first.startswith("Linked: buttons you press act as olga")
    assert "used already" in second


def test_codes_expire_and_a_new_code_replaces_the_last(db: None) -> None:
    olga = make_user("olga")
    now = timezone.now()
    old = link_code_issue(user=olga, now=now - timedelta(minutes=20))
    with pytest.raises(LinkRefused, match="expired"):
        link_code_redeem(
            code=old, service="telegram", workspace="", account_id="1", account_name="", now=now
        )
    replaced = link_code_issue(user=olga, now=now)
    link_code_issue(user=olga, now=now)
    with pytest.raises(LinkRefused, match="unknown"):
        link_code_redeem(
            code=replaced,
            service="telegram",
            workspace="",
            account_id="1",
            account_name="",
            now=now,
        )
    assert not ChatIdentity.objects.exists()


@pytest.fixture
def polling(telegram: Channel) -> Channel:
    telegram.config = {"chat_id": "-1001234", "buttons": "poll"}
    telegram.secrets = {"bot_token": BOT_TOKEN}
    telegram.full_clean()
    telegram.save()
    return telegram


def updates_answer(*updates: dict[str, object]) -> Answer:
    return Answer(200, orjson.dumps({"ok": True, "result": list(updates)}))


def test_polling_fetches_presses_and_confirms_them(
    polling: Channel, alert: Alert, services: Receiver
) -> None:
    olga = linked("olga", "Operator", service="telegram", account_id="111")
    press = {
        "update_id": 500,
        "callback_query": {
            "id": "cbq-9",
            "from": {"id": 111},
            "data": f"tw1:ack:{alert.pk}",
            "message": {"message_id": 3, "chat": {"id": -1001234}},
        },
    }
    services.answer(updates_answer(press))

    poll_telegram()  # the beat task
    services.answer(updates_answer())
    assert telegram_poll() == 0

    alert.refresh_from_db()
    assert alert.acknowledged_by == olga
    first, second = calls(services, "getUpdates")
    assert first["offset"] == 0
    assert first["timeout"] == 0
    assert second["offset"] == 501
    assert calls(services, "answerCallbackQuery")[0]["callback_query_id"] == "cbq-9"
    poll = TelegramPoll.objects.get(bot_id=123456789)
    assert (poll.offset, poll.lease_until, poll.last_error) == (501, None, "")


def test_a_bot_polled_elsewhere_is_left_alone_and_failures_are_kept(
    polling: Channel, services: Receiver
) -> None:
    TelegramPoll.objects.create(bot_id=123456789, lease_until=timezone.now() + timedelta(minutes=1))
    assert telegram_poll() == 0
    assert services.requests == []

    TelegramPoll.objects.update(lease_until=None)
    services.answer(Answer(409, b'{"ok": false, "description": "Conflict: webhook is active"}'))
    assert telegram_poll() == 0
    assert "Conflict: webhook is active" in TelegramPoll.objects.get().last_error


def test_a_webhook_channel_is_not_polled(telegram: Channel, services: Receiver) -> None:
    assert telegram_poll() == 0
    assert services.requests == []


def test_the_new_secrets_are_exported_as_references_never_values(
    telegram: Channel, slack: Channel
) -> None:
    ChannelSecretReferences.objects.create(
        channel=telegram, references={"bot_token": "TG_TOKEN", "webhook_secret": "TG_HOOK"}
    )

    text = config_export(sections=["channels"])

    by_name = {channel["name"]: channel for channel in yaml.safe_load(text)["channels"]}
    assert by_name["desk-telegram"]["config"] == {"buttons": "webhook", "chat_id": "-1001234"}
    assert by_name["desk-telegram"]["secrets"] == {
        "bot_token": "${TG_TOKEN}",
        "webhook_secret": "${TG_HOOK}",
    }
    # Typed in the admin, with no reference: left out of the file.
    assert "secrets" not in by_name["desk-slack"]
    assert WEBHOOK_SECRET not in text
    assert SIGNING_SECRET not in text
