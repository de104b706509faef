"""Apprise URLs, delivered by Apprise itself to a local receiver."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from alerts.channels.apprise import AppriseChannel
from tests.alerts.channels.receivers import Answer, Receiver, notification


def test_it_notifies_through_an_apprise_url(receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/notify"

    result = AppriseChannel({}, {"url": url}).send(notification(severity="EMERGENCY"))

    assert result.ok
    [request] = receiver.requests
    assert request.path == "/notify"
    body = request.json()
    assert body["title"] == "[Firing] EMERGENCY drawdown on alpha-bot"
    assert "Drawdown 21.5 % is past 20 %" in body["message"]
    assert body["type"] == "failure"


def test_it_retries_when_the_service_fails(receiver: Receiver) -> None:
    receiver.answer(Answer(500, b"down"))

    result = AppriseChannel({}, {"url": f"json://127.0.0.1:{receiver.port}/"}).send(notification())

    assert not result.ok
    assert not result.permanent
    assert result.error.startswith("Apprise could not deliver")
    assert result.status == 500


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    "url",
    ["json://127.0.0.1:{port}/", "json://localhost:{port}/", "xml://10.0.0.8/", "ntfy://[::1]/t"],
)
def test_it_refuses_an_apprise_url_aimed_inside(receiver: Receiver, url: str) -> None:
    url = url.format(port=receiver.port)

    with pytest.raises(ValidationError) as caught:
        AppriseChannel.validate({}, {"url": url})
    result = AppriseChannel({}, {"url": url}).send(notification())

    assert "url" in caught.value.message_dict
    assert not result.ok
    assert result.permanent
    assert receiver.requests == []


@pytest.mark.usefixtures("nothing_allowed")
def test_it_does_not_resolve_a_token_apprise_calls_a_host() -> None:
    # tgram://<bot token>/<chat>: the "host" is a credential, never sent to DNS.
    AppriseChannel.validate({}, {"url": "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/42"})
