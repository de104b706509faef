"""Stopping and re-arming trading: what people and rules call.

`metrics.control` keeps the controls and resolves the state each source must obey;
this module is the way to change them. Each change is checked (a person needs
`metrics.halt` to halt or reduce, `metrics.rearm` to loosen; a rule only ever
tightens), recorded on the timeline of the alert that caused it (and, for a re-arm, of
the alert whose halt it lifts), and told to the trading systems concerned through
their recovery channels, as outbox rows in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from metrics.control import (
    RANK,
    ControlChange,
    ControlRefused,
    SourceChange,
    control_set,
)
from metrics.models import Source, Tag, TradingControl

from .models import Alert, AlertTransition, Channel, Notification, Rule, Severity, Threshold
from .routing import notifications_create

State = TradingControl.State
Scope = TradingControl.Scope

__all__ = [
    "ControlRefused",
    "PermissionDenied",
    "Target",
    "trading_control_by_person",
    "trading_control_by_rule",
]

# The severity a state change is delivered with (recovery channels ignore their minimum
# for it: a command to the bot is never too minor to send).
_SEVERITY = {State.HALTED: Severity.CRITICAL, State.REDUCE_ONLY: Severity.ERROR}
ACTION_STATE = {
    Threshold.Action.HALT: State.HALTED,
    Threshold.Action.REDUCE_ONLY: State.REDUCE_ONLY,
}


@dataclass(frozen=True)
class Target:
    """What a control covers: one source, the sources with a tag, or every source."""

    scope: str
    source: Source | None = None
    tag: Tag | None = None

    @classmethod
    def of_source(cls, source: Source) -> Target:
        return cls(Scope.SOURCE, source=source)

    @classmethod
    def of_tag(cls, tag: Tag) -> Target:
        return cls(Scope.TAG, tag=tag)

    @classmethod
    def everything(cls) -> Target:
        return cls(Scope.ALL)

    def __str__(self) -> str:
        if self.scope == Scope.SOURCE:
            return f"source {self.source}"
        if self.scope == Scope.TAG:
            return f"sources tagged {self.tag}"
        return "all sources"


def permission_needed(target: Target, state: str) -> str:
    """`metrics.halt` to tighten (or keep) the target's state, `metrics.rearm` to loosen it."""
    current = TradingControl.objects.filter(
        scope=target.scope, source=target.source, tag=target.tag
    ).first()
    now = timezone.now()
    before = State.ACTIVE
    if current is not None:
        expired = current.expires_at is not None and current.expires_at <= now
        before = State.ACTIVE if expired else State(current.state)
    return "metrics.rearm" if RANK[State(state)] < RANK[before] else "metrics.halt"


def trading_control_by_person(
    *,
    target: Target,
    state: str,
    by: AbstractBaseUser | None,
    note: str,
    via: str,
    alert_id: int | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> ControlChange:
    """A person sets the target's state (halt, reduce only, re-arm) with a required note.

    `by` None: the command line, run by whoever may run it on the server. Raises
    PermissionDenied without the permission and ControlRefused for a change that makes
    no sense (no note, an expiry on a halt).
    """
    needed = permission_needed(target, state)
    if by is not None and not by.has_perm(needed):  # type: ignore[attr-defined]
        what = "re-arm (loosen) trading" if needed == "metrics.rearm" else "halt trading"
        raise PermissionDenied(f"You need the permission to {what} ({needed}).")
    with transaction.atomic():
        change = control_set(
            scope=target.scope, source=target.source, tag=target.tag, state=state,
            reason=note, by=by, via=via, alert_id=alert_id, expires_at=expires_at, now=now,
        )  # fmt: skip
        assert change is not None
        change_record(change, actor=by, now=change.control.set_at)
    return change


def trading_control_by_rule(
    *, alert: Alert, rule: Rule, threshold: Threshold, now: datetime
) -> ControlChange | None:
    """A firing alert's threshold action tightens its source's state (never loosens it).

    In the caller's (the lifecycle's) transaction. None when the rule's trading actions
    are off, the threshold has none, or the source is already that strict.
    """
    if not rule.trading_actions or not threshold.action:
        return None
    state = ACTION_STATE[Threshold.Action(threshold.action)]
    change = control_set(
        scope=Scope.SOURCE, source=alert.source, state=state,
        reason=alert.message or f"{rule.name} fired", rule=rule.name, via="rule",
        alert_id=alert.pk, tighten_only=True, now=now,
    )  # fmt: skip
    if change is not None:
        change_record(change, actor=None, now=now)
    return change


def change_record(change: ControlChange, *, actor: AbstractBaseUser | None, now: datetime) -> None:
    """Put the change on the timelines of the alerts it concerns and in the recovery outbox."""
    control = change.control
    alert_ids = {control.alert_id} if control.alert_id else set()
    for source_change in change.sources:
        decided = source_change.before.decided_by
        if decided is not None and decided.alert_id and source_change.changed:
            # A re-arm (or a wider halt) ends what that alert caused: it belongs there too.
            alert_ids.add(decided.alert_id)
    details = {
        "state": control.state,
        "previous_state": change.previous_state,
        "scope": control.scope,
        "target": control.target,
        "note": control.reason,
        "set_by": control.set_by_rule or None,
        "via": control.set_via,
        "expires_at": control.expires_at.isoformat() if control.expires_at else None,
        "sources": [
            {"source": c.source_name, "before": c.before.state, "after": c.after.state}
            for c in change.changed_sources[:50]
        ],
    }
    for alert in Alert.objects.filter(pk__in=alert_ids):
        AlertTransition.objects.create(
            alert=alert, at=now, kind=AlertTransition.Kind.TRADING_STATE, severity=alert.severity,
            value=alert.value,
            actor=actor if actor is not None and actor.pk is not None else None,  # type: ignore[misc]
            details=details,
        )  # fmt: skip
    recovery_notify(change, now=now)


def state_channels() -> list[Channel]:
    """Recovery channels that tell trading systems their state changes."""
    return [
        channel
        for channel in Channel.objects.filter(kind=Channel.Kind.RECOVERY, enabled=True)
        if channel.config.get("trading_state") is True
    ]


def state_payload(change: SourceChange, control: TradingControl) -> dict[str, Any]:
    """What a recovery channel sends about one source's new state."""
    return {
        "source": change.source_name,
        "source_id": change.source_id,
        "previous_state": change.before.state,
        **change.after.as_dict(),
        "changed_by": control.set_by.get_username() if control.set_by else control.set_by_rule,
        "changed_via": control.set_via,
        "note": control.reason,
        "severity": Severity(_SEVERITY.get(State(change.after.state), Severity.INFO)).label.upper(),
    }


def recovery_notify(change: ControlChange, *, now: datetime) -> list[Notification]:
    """One outbox row per recovery channel and source whose state changed (queued on commit)."""
    changed = change.changed_sources
    if not changed:
        return []
    channels = state_channels()
    rows = []
    for source_change in changed:
        payload = state_payload(source_change, change.control)
        severity = _SEVERITY.get(State(source_change.after.state), Severity.INFO)
        for channel in channels:
            named = str(channel.config.get("source") or "")
            if named and named != source_change.source_name:
                continue
            rows.append(
                Notification(
                    channel=channel,
                    alert_id=change.control.alert_id,
                    event=Notification.Event.TRADING_STATE,
                    severity=severity,
                    payload=payload,
                )
            )
    return notifications_create(rows, at=now)
