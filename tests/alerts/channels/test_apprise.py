"""Apprise URLs, delivered by Apprise itself to a local receiver."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import ValidationError
from pytest_django.fixtures import Settings

from alerts.channels import apprise as apprise_channel
from alerts.channels import destinations
from alerts.channels.apprise import AppriseChannel
from tests.alerts.channels.conftest import Listener
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


# Whatever the scheme, a host inside is refused: the services whose URL names a server
# (Home Assistant, Bark, Nextcloud Talk, Synology, Signal, the generic JSON/XML/form
# kinds, e-mail's SMTP server), and every spelling of loopback the C library reads.
INSIDE = [
    "hassio://localhost:{port}/token",
    "hassio://0x7f000001:{port}/token",
    "hassio://2130706433:{port}/token",
    "hassios://0x7f.1:{port}/token",
    "bark://localhost:{port}/device",
    "nctalk://user:pass@localhost:{port}/room",
    "synology://localhost:{port}/token",
    "signal://localhost:{port}/+12345678901",
    "gotify://[::1]:{port}/token",
    "form://localhost:{port}/",
    "xml://0x7f000001:{port}/",
    "json://2130706433:{port}/",
    "ntfy://localhost:{port}/topic",
    "mailto://user:pass@example.com:{port}?smtp=localhost",
]


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize("url", INSIDE)
def test_it_refuses_any_scheme_aimed_inside_on_save_and_on_send(
    listener: Listener, url: str
) -> None:
    url = url.format(port=listener.port)

    with pytest.raises(ValidationError) as caught:
        AppriseChannel.validate({}, {"url": url})
    result = AppriseChannel({}, {"url": url}).send(notification())

    [message] = caught.value.message_dict["url"]
    assert "loopback" in message
    assert "channels may not deliver there" in message
    assert "TRADEWATCH_DELIVERY_ALLOWED_NETWORKS" in message
    assert not result.ok
    assert result.permanent
    assert result.error.startswith("Destination refused:")
    assert listener.connections() == 0


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("xml://169.254.169.254/latest", "the cloud metadata service"),
        ("json://10.0.0.1/", "a private address"),
        ("bark://192.168.1.20:8080/device", "a private address"),
        ("hassio://[fe80::1]/token", "a link-local address"),
    ],
)
def test_it_names_what_an_address_inside_is(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        AppriseChannel.validate({}, {"url": url})


def rebind_to_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tradewatch's own lookups answer a public address; sockets still reach loopback.

    This is DNS rebinding: the name passes the check on save, then points inside.
    """

    def public(host: str, port: int) -> list[destinations.IPAddress]:
        return [ipaddress.ip_address("93.184.215.14")]

    monkeypatch.setattr(destinations, "resolve", public)
    monkeypatch.setattr(apprise_channel, "resolve", public, raising=False)


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    "url",
    [
        "json://localhost:{port}/notify",
        "hassio://localhost:{port}/token",
        "signal://localhost:{port}/+12345678901",
    ],
)
def test_it_vets_the_address_apprise_connects_to_after_dns(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    rebind_to_public(monkeypatch)
    url = url.format(port=receiver.port)
    AppriseChannel.validate({}, {"url": url})

    result = AppriseChannel({}, {"url": url}).send(notification())

    assert not result.ok
    assert result.permanent
    assert "localhost resolves" not in result.error
    assert "127.0.0.1 is a loopback address" in result.error
    assert receiver.requests == []


def test_it_lets_an_allowed_network_through(receiver: Receiver, settings: Settings) -> None:
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    url = f"hassio://localhost:{receiver.port}/token"

    AppriseChannel.validate({}, {"url": url})
    result = AppriseChannel({}, {"url": url}).send(notification())

    assert result.ok, result.error
    [request] = receiver.requests
    assert request.path == "/api/services/persistent_notification/create"


@pytest.mark.usefixtures("nothing_allowed")
def test_it_reaches_a_cloud_service_without_sending_its_token_to_dns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up: list[str] = []

    def recording(host: str, port: int) -> list[destinations.IPAddress]:
        looked_up.append(host)
        return [ipaddress.ip_address("93.184.215.14")]

    monkeypatch.setattr(destinations, "resolve", recording)

    AppriseChannel.validate({}, {"url": "ntfy://my-alerts-topic"})
    AppriseChannel.validate({}, {"url": "pover://userkey@apptoken"})

    assert looked_up == []


@pytest.mark.parametrize("url", ["syslog://", "syslog://local5"])
def test_it_refuses_a_scheme_it_cannot_check_unless_allowed(url: str, settings: Settings) -> None:
    with pytest.raises(ValidationError, match="TRADEWATCH_APPRISE_UNCHECKED_SCHEMES"):
        AppriseChannel.validate({}, {"url": url})
    refused = AppriseChannel({}, {"url": url}).send(notification())

    settings.TRADEWATCH_APPRISE_UNCHECKED_SCHEMES = ["syslog"]
    AppriseChannel.validate({}, {"url": url})

    assert not refused.ok
    assert refused.permanent
    assert "syslog:// delivers without a network connection" in refused.error
