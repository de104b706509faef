"""The channel tests' receivers and what is sent to them.

The receivers are the shared ones of `tests.receivers` (HTTP and SMTP, on loopback);
here are the messages: an alert as the webhook payload carries it, and a notification
message as the delivery task builds it.
"""

from __future__ import annotations

from typing import Any

from alerts.channels.base import NotificationMessage
from tests.processes import free_port as free_port
from tests.receivers import Answer as Answer
from tests.receivers import Inbox as Inbox
from tests.receivers import Receiver as Receiver
from tests.receivers import smtp_controller as smtp_controller


def alert_payload(**overrides: Any) -> dict[str, Any]:
    """An alert as the SPEC's webhook payload carries it."""
    alert: dict[str, Any] = {
        "id": 42,
        "fingerprint": "9f2c1e",
        "rule": "drawdown",
        "source": "alpha-bot",
        "severity": "CRITICAL",
        "status": "firing",
        "value": 21.5,
        "threshold": 20.0,
        "message": "Drawdown 21.5 % is past 20 %",
        "first_seen": "2025-03-04T10:00:00+00:00",
        "last_seen": "2025-03-04T10:05:00+00:00",
        "count": 3,
        "url": "/admin/alerts/alert/42/change/",
    }
    alert.update(overrides)
    return alert


def notification(
    event: str = "firing",
    *,
    digest: tuple[dict[str, Any], ...] = (),
    webhook_id: str = "msg_2Vxp9c0a1b2c3d4e",
    **alert_overrides: Any,
) -> NotificationMessage:
    """A message for one alert, as the delivery task builds it."""
    return NotificationMessage(
        webhook_id=webhook_id, event=event, alert=alert_payload(**alert_overrides), digest=digest
    )
