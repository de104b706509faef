"""The buttons a chat notification carries, and the data a pressed button sends back.

Telegram (inline keyboard) and Slack (Block Kit actions) show the same buttons; a press
comes back to Tradewatch as `tw1:<action>:<alert id>` (Telegram allows 64 bytes of
callback data), which the chat app reads with `press_read` and acts on as the person
linked to the chat account that pressed it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from alerts.channels.base import NotificationMessage

_PREFIX = "tw1"


class Action(enum.StrEnum):
    """What a button does to the alert (or, for halt, to its source's trading)."""

    ACKNOWLEDGE_HOUR = "ack1h"
    ACKNOWLEDGE = "ack"
    RESOLVE = "resolve"
    SILENCE_HOUR = "silence1h"
    HALT = "halt"
    # Telegram has no confirmation dialog of its own: its Halt button asks with these.
    HALT_CONFIRMED = "haltok"
    HALT_CANCELLED = "back"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Action.ACKNOWLEDGE_HOUR: "Acknowledge 1 h",
    Action.ACKNOWLEDGE: "Acknowledge until resolved",
    Action.RESOLVE: "Resolve",
    Action.SILENCE_HOUR: "Silence 1 h",
    Action.HALT: "Halt the source",
    Action.HALT_CONFIRMED: "Yes, halt",
    Action.HALT_CANCELLED: "Cancel",
}

# Events that announce an open alert someone may act on; a resolved alert, a test or a
# rate-limit digest (several alerts in one message) carry no buttons.
_OPEN_EVENTS = frozenset({"firing", "repeat", "escalated", "acknowledged"})


@dataclass(frozen=True)
class Press:
    """A pressed button: which action, on which alert."""

    action: Action
    alert_id: int


def press_data(action: Action, alert_id: int) -> str:
    """What the button sends back when pressed."""
    return f"{_PREFIX}:{action.value}:{alert_id}"


def press_read(data: Any) -> Press | None:
    """The press a button's data says, or None for data no Tradewatch button sends."""
    if not isinstance(data, str):
        return None
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[2].isdigit():
        return None
    try:
        action = Action(parts[1])
    except ValueError:
        return None
    alert_id = int(parts[2])
    return Press(action, alert_id) if 0 < alert_id < 2**63 else None


def actions_for(message: NotificationMessage) -> list[Action]:
    """The buttons a notification shows: none unless it is about one open alert."""
    alert = message.alert
    alert_id = alert.get("id")
    if message.event not in _OPEN_EVENTS or message.digest or not isinstance(alert_id, int):
        return []
    if alert.get("status") == "resolved":
        return []
    actions = [Action.RESOLVE, Action.SILENCE_HOUR]
    if not alert.get("acknowledged") and message.event != "acknowledged":
        actions = [Action.ACKNOWLEDGE_HOUR, Action.ACKNOWLEDGE, *actions]
    if alert.get("source"):
        actions.append(Action.HALT)
    return actions
