"""Recovery actions of health checks: a check turning bad tells its trading system what to do.

A recovery action is a channel of kind `recovery` (`alerts.channels.recovery`): alerts
reach it through policies like any channel, and a health check may name one directly,
with how bad its status must turn. That send is an outbox row written in the same
transaction as the check's new status; `alerts.delivery` claims, signs, retries and
logs it like every notification.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from alerts.models import Notification, Severity
from alerts.routing import notifications_create

from .models import HealthCheck
from .scoring import Status

_RECOVER_LEVEL: Final = {
    HealthCheck.RecoverWhen.DEGRADED: Status.DEGRADED.level,
    HealthCheck.RecoverWhen.UNHEALTHY: Status.UNHEALTHY.level,
    HealthCheck.RecoverWhen.CRITICAL: Status.CRITICAL.level,
}
# The severity a check's recovery notification carries, as the health rule pack rates
# the same statuses.
_SEVERITY: Final = {
    Status.DEGRADED: Severity.WARNING,
    Status.UNHEALTHY: Severity.ERROR,
    Status.CRITICAL: Severity.CRITICAL,
}


def recovery_due(*, previous: Status, status: Status, recover_when: str) -> bool:
    """Whether the status just turned as bad as `recover_when`.

    Once per crossing: unhealthy turning critical is the same episode, and an unknown
    status (a check that never ran) is not a bad one.
    """
    level = _RECOVER_LEVEL[HealthCheck.RecoverWhen(recover_when)]
    return previous.level < level <= status.level


def check_trigger(*, check: HealthCheck, status: Status) -> dict[str, Any]:
    """What the recovery action is told about the check (its `message.alert`)."""
    return {
        "check": check.name,
        "status": status.label,
        "source": check.source.name if check.source is not None else None,
        "severity": Severity(_SEVERITY[status]).label.upper(),
        "reason": f"{check.name} turned {status.label}: {check.last_summary}"[:500],
    }


def recovery_for_check(
    *, check: HealthCheck, status: Status, previous: Status, now: datetime
) -> Notification | None:
    """Put the check's recovery action in the outbox when its status just turned bad
    enough (in the caller's transaction; queued once it commits)."""
    channel = check.recovery_action
    if channel is None or not channel.enabled:
        return None
    if not recovery_due(previous=previous, status=status, recover_when=check.recover_when):
        return None
    [notification] = notifications_create(
        [
            Notification(
                channel=channel,
                event=Notification.Event.CHECK,
                severity=_SEVERITY[status],
                payload=check_trigger(check=check, status=status),
            )
        ],
        at=now,
    )
    return notification
