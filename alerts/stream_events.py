"""What the live event stream says about an alert change (`GET /api/v1/stream`'s `alert`
event): the timeline entry, and its alert as it is then."""

from __future__ import annotations

from typing import Any

from .models import AlertTransition, Severity


def transition_event(transition: AlertTransition) -> dict[str, Any]:
    """The entry and its alert as the live event stream sends them."""
    alert = transition.alert
    actor = transition.actor
    return {
        "alert_id": alert.pk,
        "transition_id": transition.pk,
        "change": transition.kind,
        "at": transition.at,
        "state": alert.state,
        "severity": Severity(transition.severity).label.upper(),
        "value": transition.value,
        "rule": {"id": alert.rule_id, "name": alert.rule.name},
        "source": {"id": alert.source_id, "name": alert.source.name},
        "message": alert.message,
        "acknowledged": alert.acknowledged_at is not None,
        "silenced": transition.silenced,
        "actor": actor.get_username() if actor is not None else None,
    }
