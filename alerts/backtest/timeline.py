"""The lifecycle of a backtest's alerts, in memory: what the live lifecycle would record.

`alerts.lifecycle` loads, locks and saves an alert around the pure decisions of
`alerts.transitions`; here the same decisions (`finding_step`, `breach_outcome`,
`clear_outcome`) move an alert held in memory, and notifying transitions are routed
with the same pure steps as `alerts.routing` (`routes_chosen`, `channels_kept`) against
the enabled policies, so "what would have been sent" follows the live rules. Nothing is
written anywhere.

What a backtest cannot know is left out and said so: no person acknowledges or
resolves, no silence holds anything back (the question is how noisy the rule is, not
what a maintenance window hid), no trading action is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts import engine
from alerts.lifecycle import more_extreme, repeat_interval
from alerts.models import Alert, AlertTransition, Notification, Rule
from alerts.routing import EVENT_OF_TRANSITION, RoutingPolicy, channels_kept, routes_chosen
from alerts.transitions import Outcome, Standing, Step, breach_outcome, clear_outcome, finding_step

Kind = AlertTransition.Kind
State = Alert.State


def _never_silenced() -> bool:
    return False


@dataclass(frozen=True)
class Escalation:
    """A policy that escalates: after how long, to which channels (id, minimum severity,
    whether the kind acts once per alert)."""

    route: RoutingPolicy
    after: timedelta
    channels: tuple[tuple[int, int, bool], ...]


@dataclass(frozen=True)
class Routing:
    """What routing needs, read once for a whole backtest."""

    policies: Sequence[RoutingPolicy]
    # channel id -> (minimum severity, acts once per alert); enabled channels only
    floors: dict[int, tuple[int, bool]]
    escalations: Sequence[Escalation] = ()


@dataclass(frozen=True)
class Sent:
    """One notification the backtest would have sent."""

    at: datetime
    alert: int  # the index of the alert in its run
    event: str
    severity: int
    policy_id: int
    channel_id: int


@dataclass
class ReplayedAlert:
    """An alert as the lifecycle would have kept it."""

    index: int
    source_id: int
    labels: dict[str, str]
    labels_key: str
    state: str
    severity: int
    peak_severity: int
    value: float | None
    peak_value: float | None
    threshold_value: float | None
    comparison: str
    first_seen: datetime
    last_seen: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str = ""
    inhibited: bool = False
    announced_at: datetime | None = None
    last_notified_at: datetime | None = None
    condition_cleared_at: datetime | None = None
    count: int = 1
    # (at, kind, severity, notify)
    transitions: list[tuple[datetime, str, int, bool]] = field(default_factory=list)
    notifications: int = 0
    # routing's memory of this alert: the last notification per policy (repeat spacing),
    # the acting channels that heard of it, the policies that escalated it
    last_by_policy: dict[int, datetime] = field(default_factory=dict)
    acted: set[int] = field(default_factory=set)
    escalated: set[int] = field(default_factory=set)

    @property
    def is_open(self) -> bool:
        return self.state != State.RESOLVED

    def standing(self) -> Standing:
        return Standing(
            state=self.state,
            severity=self.severity,
            first_seen=self.first_seen,
            inhibited=self.inhibited,
            announced_at=self.announced_at,
            last_notified_at=self.last_notified_at,
            condition_cleared_at=self.condition_cleared_at,
        )


class Timeline:
    """The alerts of one rule (as judged by one set of thresholds) on the chosen sources,
    and the notifications they would have caused."""

    def __init__(
        self, rule: Rule, *, top_severity: int, routing: Routing, tag_ids: dict[int, set[int]]
    ) -> None:
        self.rule = rule
        self.top_severity = top_severity
        self.routing = routing
        self.tag_ids = tag_ids
        self.alerts: list[ReplayedAlert] = []
        self.sent: list[Sent] = []

    # --- what the lifecycle does with a finding (`alerts.lifecycle.apply_finding`) -------

    def apply(
        self,
        current: ReplayedAlert | None,
        *,
        source_id: int,
        labels: dict[str, str],
        labels_key: str,
        evaluation: engine.Evaluation,
        now: datetime,
        inhibited: bool,
    ) -> ReplayedAlert | None:
        """Apply one finding to the open alert of its series (`current`); return the alert
        open afterwards, if any."""
        step = finding_step(evaluation.status, self.rule.missing_data)
        if step is None:
            return current
        if step == "breach":
            return self._breach(current, source_id, labels, labels_key, evaluation, now, inhibited)
        if current is None:
            return None
        return self._clear(current, now, inhibited, missing=step == "clear_missing")

    def _breach(
        self,
        alert: ReplayedAlert | None,
        source_id: int,
        labels: dict[str, str],
        labels_key: str,
        evaluation: engine.Evaluation,
        now: datetime,
        inhibited: bool,
    ) -> ReplayedAlert:
        rule = self.rule
        if evaluation.threshold is not None and evaluation.severity is not None:
            severity, threshold = int(evaluation.severity), evaluation.threshold
        else:  # missing data alerts at the rule's top severity
            severity, threshold = self.top_severity, None
        value = evaluation.value
        comparison = threshold.comparison.value if threshold is not None else ""
        threshold_value = threshold.value if threshold is not None else None
        if alert is None:
            outcome = breach_outcome(
                None, severity=severity, now=now, inhibited=inhibited,
                for_duration=rule.for_duration, repeat_every=repeat_interval(severity),
                silenced=_never_silenced,
            )  # fmt: skip
            alert = ReplayedAlert(
                index=len(self.alerts), source_id=source_id, labels=labels,
                labels_key=labels_key, state=outcome.state, severity=severity,
                peak_severity=severity, value=value, peak_value=value,
                threshold_value=threshold_value, comparison=comparison, first_seen=now,
                last_seen=now, inhibited=inhibited,
                fired_at=now if outcome.fired else None,
                last_notified_at=now if outcome.notified else None,
                announced_at=now if outcome.announced else None,
            )  # fmt: skip
            self.alerts.append(alert)
            for step in outcome.steps:
                self._write(alert, step, now)
            return alert
        standing = alert.standing()
        alert.count += 1
        alert.last_seen = now
        alert.value = value
        alert.peak_value = more_extreme(comparison or alert.comparison, alert.peak_value, value)
        alert.condition_cleared_at = None
        alert.severity = severity
        alert.peak_severity = max(alert.peak_severity, severity)
        if threshold is not None:
            alert.threshold_value, alert.comparison = threshold_value, comparison
        outcome = breach_outcome(
            standing, severity=severity, now=now, inhibited=inhibited,
            for_duration=rule.for_duration, repeat_every=repeat_interval(severity),
            silenced=_never_silenced,
        )  # fmt: skip
        self._apply(alert, outcome, now)
        return alert

    def _clear(
        self, alert: ReplayedAlert, now: datetime, inhibited: bool, *, missing: bool
    ) -> ReplayedAlert | None:
        outcome = clear_outcome(
            alert.standing(), now=now, inhibited=inhibited, missing=missing,
            keep_firing_for=self.rule.keep_firing_for,
            repeat_every=repeat_interval(alert.severity), silenced=_never_silenced,
        )  # fmt: skip
        if alert.state == State.PENDING:
            # It never fired: closed without telling anyone.
            alert.state, alert.resolved_at = State.RESOLVED, now
            alert.resolution = Alert.Resolution.CONDITION_CLEARED
            alert.transitions.append((now, Kind.RESOLVED, alert.severity, False))
            return None
        self._apply(alert, outcome, now)
        if outcome.state != State.RESOLVED:
            return alert
        alert.state, alert.resolved_at = State.RESOLVED, now
        alert.resolution = (
            Alert.Resolution.MISSING_DATA if missing else Alert.Resolution.CONDITION_CLEARED
        )
        self._write(alert, outcome.steps[-1], now)
        return None

    def _apply(self, alert: ReplayedAlert, outcome: Outcome, now: datetime) -> None:
        alert.inhibited = outcome.inhibited
        if outcome.fired:
            alert.state, alert.fired_at = State.FIRING, now
        if outcome.condition_cleared:
            alert.condition_cleared_at = now
        if outcome.announced:
            alert.announced_at = now
        for step in outcome.steps:
            if step.kind != Kind.RESOLVED:
                self._write(alert, step, now)

    def _write(self, alert: ReplayedAlert, step: Step, now: datetime) -> None:
        alert.transitions.append((now, step.kind, alert.severity, step.notify))
        if not step.notify:
            return
        alert.last_notified_at = now
        self._route(alert, step.kind, now)

    # --- routing (`alerts.routing.transition_route`) ------------------------------------

    def _route(self, alert: ReplayedAlert, kind: str, at: datetime) -> None:
        event = EVENT_OF_TRANSITION.get(kind)
        if event is None or not self.routing.policies:
            return

        def repeat_too_soon(route: RoutingPolicy) -> bool:
            last = alert.last_by_policy.get(route.id)
            return last is not None and at - last < route.policy.repeat_interval(alert.severity)

        chosen = routes_chosen(
            self.routing.policies, event=event, severity=alert.severity,
            source_id=alert.source_id, tag_ids=self.tag_ids.get(alert.source_id, set()),
            rule_id=self.rule.pk, repeat_too_soon=repeat_too_soon,
        )  # fmt: skip
        if not chosen:
            return
        floors = {pk: self.routing.floors[pk] for pk in chosen if pk in self.routing.floors}
        kept = channels_kept(
            chosen, floors, event=event, severity=alert.severity,
            acted=lambda acting: acting & alert.acted,
        )  # fmt: skip
        for channel_id, route in kept.items():
            self._send(alert, at, event, route.id, channel_id)

    def _send(
        self, alert: ReplayedAlert, at: datetime, event: str, policy_id: int, channel_id: int
    ) -> None:
        self.sent.append(Sent(at, alert.index, event, alert.severity, policy_id, channel_id))
        alert.notifications += 1
        alert.last_by_policy[policy_id] = at
        if self.routing.floors.get(channel_id, (0, False))[1]:
            alert.acted.add(channel_id)

    def escalate(self, alert: ReplayedAlert, now: datetime) -> None:
        """Escalations due on a firing alert nobody acknowledged (`alerts.escalation`),
        looked at on each evaluation rather than on escalation's own beat."""
        if alert.state != State.FIRING or alert.inhibited or alert.fired_at is None:
            return
        for escalation in self._escalations_ahead(alert):
            route = escalation.route
            if alert.fired_at > now - escalation.after:
                continue
            alert.escalated.add(route.id)
            alert.transitions.append((now, Kind.ESCALATED, alert.severity, True))
            for channel_id, floor, acts in escalation.channels:
                if alert.severity >= floor and channel_id not in alert.acted:
                    self._send(alert, now, Notification.Event.ESCALATED, route.id, channel_id)
                    if acts:
                        alert.acted.add(channel_id)

    def _escalations_ahead(self, alert: ReplayedAlert) -> list[Escalation]:
        """The escalations that apply to `alert` and have not escalated it yet."""
        return [
            escalation
            for escalation in self.routing.escalations
            if escalation.route.id not in alert.escalated
            and escalation.route.matches(
                severity=alert.severity,
                source_id=alert.source_id,
                tag_ids=self.tag_ids.get(alert.source_id, set()),
                rule_id=self.rule.pk,
            )
        ]

    def escalation_due(self, alert: ReplayedAlert) -> datetime | None:
        """When `alert`'s next escalation falls due as it stands (None: none will)."""
        if alert.state != State.FIRING or alert.inhibited or alert.fired_at is None:
            return None
        fired_at = alert.fired_at
        return min((fired_at + e.after for e in self._escalations_ahead(alert)), default=None)
