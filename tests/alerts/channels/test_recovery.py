"""The recovery action channel: a signed command to the trading system, guarded like webhooks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from standardwebhooks.webhooks import Webhook

from alerts.channels.base import NotificationMessage
from alerts.channels.recovery import RecoveryChannel
from alerts.channels.signing import signing_secret_new
from tests.alerts.channels.receivers import Answer, Receiver, alert_payload, notification

COMMAND = {"command": "pause_trading", "parameters": {"minutes": 30}}


def action(receiver: Receiver, secret: str, **config: Any) -> RecoveryChannel:
    return RecoveryChannel(
        {"url": receiver.url + "/commands", **COMMAND, **config}, {"signing_secret": secret}
    )


def message(event: str, trigger: dict[str, Any], **fields: Any) -> NotificationMessage:
    return NotificationMessage(
        webhook_id="msg_7f3a", event=event, alert=trigger, channel="pause alpha",
        created_at="2025-03-04T10:05:00+00:00", **fields,
    )  # fmt: skip


def test_it_posts_the_command_of_a_firing_alert_signed_per_standard_webhooks(
    receiver: Receiver,
) -> None:
    secret = signing_secret_new()

    result = action(receiver, secret).send(message("firing", alert_payload()))

    assert (result.ok, result.status) == (True, 200)
    [request] = receiver.requests
    assert request.path == "/commands"
    assert request.headers["webhook-id"] == "msg_7f3a"
    assert Webhook(secret).verify(request.body, request.headers) == {
        "type": "recovery_action",
        "action": "pause alpha",
        "command": "pause_trading",
        "parameters": {"minutes": 30},
        "source": "alpha-bot",
        "event": "firing",
        "reason": "drawdown fired on alpha-bot: Drawdown 21.5 % is past 20 %",
        "check": None,
        "alert_id": 42,
        "requested_at": "2025-03-04T10:05:00+00:00",
    }


def test_it_says_which_check_turned_bad_and_names_the_configured_system(
    receiver: Receiver,
) -> None:
    secret = signing_secret_new()
    trigger = {
        "check": "exchange-port",
        "status": "CRITICAL",
        "source": None,
        "severity": "CRITICAL",
        "reason": "exchange-port turned CRITICAL: refused",
    }

    action(receiver, secret, source="alpha-bot").send(message("check", trigger))

    body = Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert (body["check"], body["source"], body["alert_id"], body["event"]) == (
        "exchange-port", "alpha-bot", None, "check",
    )  # fmt: skip
    assert body["reason"] == "exchange-port turned CRITICAL: refused"


def test_a_test_names_a_command_no_bot_acts_on(receiver: Receiver) -> None:
    secret = signing_secret_new()

    action(receiver, secret).send(message("test", alert_payload(message="Does it work?")))

    body = Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert body["command"] == "test"
    assert body["would_send"] == COMMAND
    assert body["reason"] == "Does it work?"


@pytest.mark.parametrize("event", ["repeat", "resolved", "acknowledged", "digest"])
def test_it_never_acts_on_what_only_a_person_needs_to_hear(receiver: Receiver, event: str) -> None:
    result = action(receiver, signing_secret_new()).send(notification(event))

    assert (result.ok, result.permanent) == (False, True)
    assert event in result.error
    assert receiver.requests == []


def test_a_4xx_is_permanent_and_a_5xx_is_retried(receiver: Receiver) -> None:
    receiver.answer(Answer(status=400, body=b"unknown command"), Answer(status=503))
    channel = action(receiver, signing_secret_new())

    refused = channel.send(message("firing", alert_payload()))
    failing = channel.send(message("firing", alert_payload()))

    assert (refused.permanent, refused.answer) == (True, "unknown command")
    assert (failing.ok, failing.permanent, failing.status) == (False, False, 503)


def test_it_refuses_a_bot_address_inside_the_network_on_save() -> None:
    with pytest.raises(ValidationError) as caught:
        RecoveryChannel.validate(
            {"url": "http://10.1.2.3/commands", **COMMAND}, {"signing_secret": signing_secret_new()}
        )

    assert "private address" in caught.value.message_dict["url"][0]


@pytest.mark.usefixtures("nothing_allowed")
def test_it_refuses_the_address_again_when_it_connects(receiver: Receiver) -> None:
    result = action(receiver, signing_secret_new()).send(message("firing", alert_payload()))

    assert (result.ok, result.permanent) == (False, True)
    assert result.error.startswith("Destination refused")
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"command": ""}, "command"),
        ({"command": "pause trading now"}, "command"),
        ({"command": "test"}, "command"),
        ({"parameters": [1, 2]}, "parameters"),
        ({"source": 7}, "source"),
    ],
)
def test_it_names_what_is_wrong_with_the_command(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RecoveryChannel.validate(
            {"url": "http://127.0.0.1:9/commands", **COMMAND, **config},
            {"signing_secret": signing_secret_new()},
        )

    assert list(caught.value.message_dict) == [field]


def test_it_takes_a_command_of_the_operators_own() -> None:
    RecoveryChannel.validate(
        {"url": "http://127.0.0.1:9/commands", "command": "flatten_book"},
        {"signing_secret": signing_secret_new()},
    )


def test_it_makes_a_signing_secret_when_none_was_given() -> None:
    made = RecoveryChannel.secrets_completed({})
    kept = RecoveryChannel.secrets_completed({"signing_secret": "whsec_given"})

    assert made["signing_secret"].startswith("whsec_")
    assert kept == {"signing_secret": "whsec_given"}
