"""What a pressed chat button does: the operator API's services, as the linked person.

Each press runs with the linked person's permissions, exactly as the operator API would
(`alerts.change_alert` to acknowledge and resolve, `alerts.add_silence` to silence,
`metrics.halt` to halt); an unlinked account or a person without the permission changes
nothing. A press whose work is done already (a second tap, or a colleague's) changes
nothing either. Every change is on the alert's timeline naming the chat account, and in
the audit history with the person and the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pghistory
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from alerts.alert_actions import AlertClosed, alert_acknowledge, alert_resolve
from alerts.channels.base import NotificationMessage
from alerts.channels.buttons import Action, Press
from alerts.control import ControlRefused, Target, trading_control_by_person
from alerts.models import Alert, AlertTransition
from alerts.payloads import alert_payload
from alerts.silences import alert_silence, alert_silences
from metrics.control import trading_state
from metrics.models import TradingControl

from .models import ChatIdentity, Service

# What the operator API asks of a person for each button (halting is checked, with the
# same words, by `trading_control_by_person` too).
PERMISSIONS = {
    Action.ACKNOWLEDGE_HOUR: ("alerts.change_alert", "acknowledge and resolve alerts"),
    Action.ACKNOWLEDGE: ("alerts.change_alert", "acknowledge and resolve alerts"),
    Action.RESOLVE: ("alerts.change_alert", "acknowledge and resolve alerts"),
    Action.SILENCE_HOUR: ("alerts.add_silence", "create silences"),
    Action.HALT: ("metrics.halt", "halt trading"),
}
_DONE_KINDS = {
    AlertTransition.Kind.ACKNOWLEDGED: "✅ Acknowledged",
    AlertTransition.Kind.RESOLVED: "☑️ Resolved",
    AlertTransition.Kind.SILENCED: "🔕 Silenced",
    AlertTransition.Kind.TRADING_STATE: "⛔ Trading state set",
}
_DONE_LINES = 5


@dataclass(frozen=True)
class Outcome:
    """What a press came to: the words for the person, and the alert to show again."""

    text: str
    changed: bool = False
    refused: bool = False
    alert: Alert | None = None


def not_linked(service: str) -> Outcome:
    label = Service(service).label
    return Outcome(
        f"Your {label} account is not linked to a Tradewatch user, so nothing was done. "
        f"In Tradewatch's admin open Chat accounts → Link my chat account and send "
        f"/link CODE here.",
        refused=True,
    )


def press_act(*, press: Press, identity: ChatIdentity | None, service: str) -> Outcome:
    """Do what the button says, as the person linked to the account that pressed it."""
    if identity is None or not identity.user.is_active:
        return not_linked(service)
    user = identity.user
    if press.action not in PERMISSIONS:  # a step of asking, not an action (Telegram's halt)
        return Outcome("Nothing to do.", refused=True)
    permission, what = PERMISSIONS[press.action]
    if not user.has_perm(permission):
        return Outcome(
            f"{user.get_username()}, you need the permission to {what} ({permission}): "
            "nothing was done.",
            refused=True,
        )
    alert = Alert.objects.select_related("source", "rule").filter(pk=press.alert_id).first()
    if alert is None:
        return Outcome(f"Alert {press.alert_id} no longer exists.", refused=True)
    via = f"{Service(service).label} {identity.shown}"
    now = timezone.now()
    # The audit history (silences, trading controls) names the person and the account.
    with pghistory.context(user=user.pk, username=user.get_username(), via=via):
        text, changed = _act(press.action, alert, identity, via, now)
    alert.refresh_from_db()
    return Outcome(text, changed=changed, alert=alert)


def _act(
    action: Action, alert: Alert, identity: ChatIdentity, via: str, now: datetime
) -> tuple[str, bool]:
    user = identity.user
    who = user.get_username()
    if action == Action.HALT:
        return _halt(alert, identity, via)
    if not alert.is_open:
        return f"Alert {alert.pk} is resolved already: nothing to do.", False
    if action in (Action.ACKNOWLEDGE_HOUR, Action.ACKNOWLEDGE):
        until = now + timedelta(hours=1) if action == Action.ACKNOWLEDGE_HOUR else None
        current = alert.acknowledged_until
        acknowledged = alert.acknowledged_at is not None and (current is None or current > now)
        # A second tap changes nothing; "until resolved" may still lengthen "1 h".
        if acknowledged and not (until is None and current is not None):
            by = alert.acknowledged_by.get_username() if alert.acknowledged_by else "someone"
            return f"Acknowledged already by {by}.", False
        try:
            alert_acknowledge(alert_id=alert.pk, by=user, note=f"via {via}", until=until, now=now)
        except AlertClosed:
            return f"Alert {alert.pk} is resolved already: nothing to do.", False
        return f"Acknowledged by {who} {'for 1 h' if until else 'until resolved'}.", True
    if action == Action.RESOLVE:
        try:
            alert_resolve(alert_id=alert.pk, by=user, note=f"via {via}", now=now)
        except AlertClosed:
            return f"Alert {alert.pk} is resolved already: nothing to do.", False
        return f"Resolved by {who}.", True
    active = alert_silences(alert, now=now)
    if active:
        ends = [s.ends_at for s in active if s.ends_at is not None]
        lasts = f" until {max(ends):%H:%M} UTC" if len(ends) == len(active) else ""
        return f"Silenced already{lasts}.", False
    try:
        alert_silence(alert=alert, by=user, hours=1, via=via, now=now)
    except ValidationError as exc:
        return f"Not silenced: {' '.join(exc.messages)}", False
    return f"Silenced for 1 h by {who}.", True


def _halt(alert: Alert, identity: ChatIdentity, via: str) -> tuple[str, bool]:
    source = alert.source
    if trading_state(source.pk).state == TradingControl.State.HALTED:
        return f"{source.name} is halted already.", False
    try:
        trading_control_by_person(
            target=Target.of_source(source),
            state=TradingControl.State.HALTED,
            by=identity.user,
            note=f"Halted via {via} from alert {alert.pk}: {alert}"[:1000],
            via=identity.service,
            alert_id=alert.pk,
        )
    except (PermissionDenied, ControlRefused) as exc:
        return f"Not halted: {exc}", False
    return f"{source.name} halted by {identity.user.get_username()}.", True


def alert_message(alert: Alert) -> NotificationMessage:
    """The alert as a notification says it now (for the message shown again after a press)."""
    if not alert.is_open:
        event = "resolved"
    elif alert.acknowledged_at is not None:
        event = "acknowledged"
    else:
        event = "firing"
    payload = alert_payload(alert, rule_name=alert.rule.name, source_name=alert.source.name)
    return NotificationMessage(webhook_id="", event=event, alert=payload)


def done_lines(alert: Alert) -> tuple[str, ...]:
    """Who did what to the alert, newest last: what the message shows after a press."""
    steps = list(
        AlertTransition.objects.filter(alert=alert, kind__in=list(_DONE_KINDS), actor__isnull=False)
        .select_related("actor")
        .order_by("-at", "-id")[:_DONE_LINES]
    )
    lines = []
    for step in reversed(steps):
        what = _DONE_KINDS[AlertTransition.Kind(step.kind)]
        if step.kind == AlertTransition.Kind.TRADING_STATE:
            what = f"⛔ Trading {step.details.get('state', 'changed')}"
        note = str(step.details.get("note") or "")
        how = str(step.details.get("via") or "") or (note[4:] if note.startswith("via ") else "")
        assert step.actor is not None
        by = step.actor.get_username() + (f" via {how}" if how else "")
        lines.append(f"{what} by {by} at {step.at:%H:%M} UTC")
    return tuple(lines)
