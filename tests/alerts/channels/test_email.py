"""Email through a real SMTP server on loopback."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from alerts.channels.email import EmailChannel
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
