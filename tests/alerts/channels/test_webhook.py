"""The generic webhook: the SPEC payload, signed as Standard Webhooks says."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts.channels.signing import signing_secret_new
from alerts.channels.webhook import WebhookChannel
from tests.alerts.channels.receivers import Answer, Receiver, alert_payload, notification


def channel(receiver: Receiver, **secrets: str) -> WebhookChannel:
    return WebhookChannel({"url": receiver.url + "/tradewatch"}, secrets)


def test_it_posts_the_spec_payload(receiver: Receiver) -> None:
    secret = signing_secret_new()

    result = channel(receiver, signing_secret=secret).send(notification())

    assert result.ok
    assert result.status == 200
    [request] = receiver.requests
    assert request.path == "/tradewatch"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"version": 1, "event": "firing", "alert": alert_payload()}


def test_it_signs_so_the_receiver_can_verify(receiver: Receiver) -> None:
    secret = signing_secret_new()

    channel(receiver, signing_secret=secret).send(notification(webhook_id="msg_abc123"))

    [request] = receiver.requests
    assert request.headers["webhook-id"] == "msg_abc123"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(request.body, request.headers)["event"] == "firing"


def test_it_fails_verification_for_a_tampered_body(receiver: Receiver) -> None:
    secret = signing_secret_new()
    channel(receiver, signing_secret=secret).send(notification())
    [request] = receiver.requests

    tampered = request.body.replace(b"21.5", b"2.15")

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing_secret_new()).verify(request.body, request.headers)


def test_it_signs_with_both_secrets_during_rotation(receiver: Receiver) -> None:
    new, old = signing_secret_new(), signing_secret_new()

    channel(receiver, signing_secret=new, previous_signing_secret=old).send(notification())

    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(request.body, request.headers)
    assert Webhook(old).verify(request.body, request.headers)


def test_it_keeps_the_webhook_id_across_retries(receiver: Receiver) -> None:
    receiver.answer(Answer(503, b"busy"), Answer(200))
    kind = channel(receiver, signing_secret=signing_secret_new())
    message = notification(webhook_id="msg_retry1")

    first, second = kind.send(message), kind.send(message)

    assert not first.ok
    assert not first.permanent
    assert second.ok
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_retry1"] * 2


def test_it_adds_the_digest_when_alerts_were_held_back(receiver: Receiver) -> None:
    held = (alert_payload(id=43, rule="daily_loss"), alert_payload(id=44, rule="win_rate"))

    channel(receiver, signing_secret=signing_secret_new()).send(notification("digest", digest=held))

    body = receiver.requests[0].json()
    assert body["event"] == "digest"
    assert [a["id"] for a in body["digest"]] == [43, 44]
