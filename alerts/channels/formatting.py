"""The words and colours of a notification, shared by every channel kind.

Kinds differ in markup (Slack mrkdwn, Discord embeds, Telegram HTML, email HTML) but
say the same thing: a title naming the event, severity, rule and source; the alert's
message and figures; a link to the alert in the admin; the alerts a rate limit held
back when the message is a digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from django.conf import settings

from alerts.channels.base import NotificationMessage

SEVERITIES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "EMERGENCY")

SEVERITY_COLOURS: dict[str, str] = {
    "DEBUG": "#9e9e9e",
    "INFO": "#2196f3",
    "WARNING": "#ffb300",
    "ERROR": "#fb8c00",
    "CRITICAL": "#e53935",
    "EMERGENCY": "#8e24aa",
}
# A resolved alert is good news whatever its severity was.
RESOLVED_COLOUR = "#43a047"

SEVERITY_EMOJI: dict[str, str] = {
    "DEBUG": "🔍",
    "INFO": "ℹ️",  # noqa: RUF001 (the information emoji, meant)
    "WARNING": "⚠️",
    "ERROR": "❗",
    "CRITICAL": "🔥",
    "EMERGENCY": "🚨",
}
RESOLVED_EMOJI = "✅"

EVENT_WORDS: dict[str, str] = {
    "firing": "Firing",
    "repeat": "Still firing",
    "escalated": "Escalated",
    "resolved": "Resolved",
    "acknowledged": "Acknowledged",
    "test": "Test",
    "digest": "Digest",
    "operations_digest": "Operations digest",
}


@dataclass(frozen=True)
class Fact:
    """One labelled figure of an alert (value, threshold, count...)."""

    label: str
    value: str


def colour(message: NotificationMessage) -> str:
    """The message's colour as `#rrggbb`: by severity, green once resolved."""
    if message.event == "resolved":
        return RESOLVED_COLOUR
    return SEVERITY_COLOURS.get(message.severity, SEVERITY_COLOURS["INFO"])


def colour_int(message: NotificationMessage) -> int:
    """The message's colour as an integer (Discord embeds)."""
    return int(colour(message).lstrip("#"), 16)


def emoji(message: NotificationMessage) -> str:
    """A glyph a phone's lock screen shows before the title."""
    if message.event == "resolved":
        return RESOLVED_EMOJI
    return SEVERITY_EMOJI.get(message.severity, SEVERITY_EMOJI["INFO"])


def title(message: NotificationMessage) -> str:
    """One line saying what happened: `[Firing] CRITICAL drawdown on alpha-bot`."""
    if message.report is not None:
        return str(message.report["title"])
    return f"[{event_word(message.event)}] {summary(message.alert)}"


def summary(alert: dict[str, Any]) -> str:
    """`CRITICAL drawdown on alpha-bot`: severity, rule and source of one alert."""
    severity = str(alert.get("severity", "INFO"))
    rule = name_of(alert.get("rule")) or "alert"
    source = name_of(alert.get("source"))
    return f"{severity} {rule} on {source}" if source else f"{severity} {rule}"


def event_word(event: str) -> str:
    """The event as an operator reads it."""
    return EVENT_WORDS.get(event, event.capitalize())


def name_of(value: Any) -> str:
    """A rule's or source's name, whether the payload carries a name or an object."""
    if isinstance(value, dict):
        return str(value.get("name") or value.get("id") or "")
    return "" if value is None else str(value)


def facts(alert: dict[str, Any]) -> list[Fact]:
    """The figures worth a glance, in a fixed order, leaving out those not present."""
    labelled = (
        ("Value", "value"),
        ("Threshold", "threshold"),
        ("Status", "status"),
        ("Count", "count"),
        ("First seen", "first_seen"),
        ("Last seen", "last_seen"),
    )
    return [
        Fact(label, str(alert[key])) for label, key in labelled if alert.get(key) not in (None, "")
    ]


def link(alert: dict[str, Any]) -> str:
    """Absolute URL of the alert's admin page, or "" when the payload has none."""
    url = str(alert.get("url") or "")
    if not url:
        return ""
    # A path alone is made absolute on the address operators reach Tradewatch at.
    return urljoin(settings.TRADEWATCH_PUBLIC_URL.rstrip("/") + "/", url)


def text(message: NotificationMessage) -> str:
    """The message's description as plain text (no title), digest included."""
    alert = message.alert
    lines: list[str] = []
    if alert.get("message"):
        lines.append(str(alert["message"]))
    lines.extend(f"{fact.label}: {fact.value}" for fact in facts(alert))
    url = link(alert)
    if url:
        lines.append(url)
    if message.digest:
        lines.append("")
        lines.append(digest_heading(message))
        lines.extend(f"- {digest_line(held)}" for held in message.digest)
    return "\n".join(lines)


def digest_heading(message: NotificationMessage) -> str:
    """Introduces the alerts a rate limit held back."""
    count = len(message.digest)
    return f"{count} more alert{'s' if count != 1 else ''} held back by the rate limit:"


def digest_line(alert: dict[str, Any]) -> str:
    """One held-back alert on one line: summary, value and message."""
    parts = [summary(alert)]
    if alert.get("value") not in (None, ""):
        parts.append(f"value {alert['value']}")
    if alert.get("message"):
        parts.append(str(alert["message"]))
    return " — ".join(parts)


def payload(message: NotificationMessage) -> dict[str, Any]:
    """The SPEC's outbound payload: version, event, alert, and the digest when present."""
    body: dict[str, Any] = {"version": 1, "event": message.event, "alert": message.alert}
    if message.digest:
        body["digest"] = list(message.digest)
    if message.report is not None:
        body["report"] = {key: value for key, value in message.report.items() if key != "html"}
    return body


def truncated(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, with an ellipsis when cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"
