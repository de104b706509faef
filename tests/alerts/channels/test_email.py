"""Email through a real SMTP server on loopback."""

from __future__ import annotations

import ipaddress
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from pytest_django.fixtures import Settings

from alerts.channels import destinations
from alerts.channels.email import EmailChannel
from tests.alerts.channels.conftest import Listener
from tests.alerts.channels.receivers import Inbox, alert_payload, free_port, notification


def config(port: int, **overrides: Any) -> dict[str, Any]:
    return {
        "to": ["risk@example.com", "ops@example.com"],
        "from_address": "tradewatch@example.com",
        "host": "127.0.0.1",
        "port": port,
        **overrides,
    }


def received(inbox: Inbox) -> EmailMessage:
    [envelope] = inbox.envelopes
    raw = envelope.content if isinstance(envelope.content, bytes) else b""
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_it_sends_a_text_and_an_html_part(inbox: Inbox) -> None:
    result = EmailChannel(config(inbox.port), {}).send(
        notification(message="Drawdown <21.5 %> & rising", webhook_id="msg_mail1")
    )

    assert result.ok
    assert inbox.envelopes[0].rcpt_tos == ["risk@example.com", "ops@example.com"]
    mail = received(inbox)
    assert "[Firing] CRITICAL drawdown on alpha-bot" in str(mail["Subject"])
    assert mail["X-Tradewatch-Notification"] == "msg_mail1"
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "Drawdown <21.5 %> & rising" in text.get_content()
    assert "Value: 21.5" in text.get_content()
    assert "Drawdown &lt;21.5 %&gt; &amp; rising" in html.get_content()
    assert "<h2 style='color:#e53935'>" in html.get_content()


def test_it_lists_the_digest_in_both_parts(inbox: Inbox) -> None:
    held = (alert_payload(rule="win_rate", severity="WARNING"),)

    EmailChannel(config(inbox.port), {}).send(notification("digest", digest=held))

    mail = received(inbox)
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "- WARNING win_rate on alpha-bot" in text.get_content()
    assert "<li>WARNING win_rate on alpha-bot" in html.get_content()


def test_it_stops_on_a_permanent_smtp_refusal(inbox: Inbox) -> None:
    inbox.rcpt_answer = "550 5.1.1 Mailbox unavailable"

    result = EmailChannel(config(inbox.port), {}).send(notification())

    assert not result.ok
    assert result.permanent
    assert result.status == 550
    assert "Mailbox unavailable" in result.error


def test_it_retries_on_a_temporary_smtp_refusal(inbox: Inbox) -> None:
    inbox.rcpt_answer = "451 4.7.1 Try again later"

    result = EmailChannel(config(inbox.port), {}).send(notification())

    assert not result.ok
    assert not result.permanent
    assert result.status == 451


def test_it_retries_when_the_smtp_server_is_away() -> None:
    result = EmailChannel(config(free_port()), {}).send(notification())

    assert not result.ok
    assert not result.permanent
    assert "SMTP delivery failed" in result.error


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("10.0.0.1", "a private address"),
        ("169.254.169.254", "the cloud metadata service"),
        ("127.0.0.1", "a loopback address"),
        ("localhost", "a loopback address"),
        ("0x7f000001", "a loopback address"),
        ("2130706433", "a loopback address"),
        ("[::1]", "a loopback address"),
        ("fe80::1", "a link-local address"),
    ],
)
def test_it_refuses_an_smtp_server_inside_on_save(host: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EmailChannel.validate(config(25, host=host), {})

    [message] = caught.value.message_dict["host"]
    assert reason in message
    assert "channels may not deliver there" in message


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f000001", "127.1"])
def test_it_does_not_even_connect_to_an_smtp_port_inside(listener: Listener, host: str) -> None:
    result = EmailChannel(config(listener.port, host=host), {}).send(notification())

    assert not result.ok
    assert result.permanent
    assert "127.0.0.1 is a loopback address" in result.error
    assert listener.connections() == 0


@pytest.mark.usefixtures("nothing_allowed")
def test_it_refuses_a_name_rebound_inside_after_the_save_time_check(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        destinations, "resolve", lambda host, port: [ipaddress.ip_address("93.184.215.14")]
    )
    EmailChannel.validate(config(inbox.port, host="localhost"), {})

    result = EmailChannel(config(inbox.port, host="localhost"), {}).send(notification())

    assert not result.ok
    assert result.permanent
    assert result.error.startswith("Destination refused: 127.0.0.1 is a loopback address")
    assert inbox.envelopes == []


def test_an_internal_relay_is_let_through_by_the_allowed_networks(
    inbox: Inbox, settings: Settings
) -> None:
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["127.0.0.1/32"]

    EmailChannel.validate(config(inbox.port, host="localhost"), {})
    result = EmailChannel(config(inbox.port, host="localhost"), {}).send(notification())

    assert result.ok, result.error
    assert len(inbox.envelopes) == 1
