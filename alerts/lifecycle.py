"""Applying evaluations to alerts: open, escalate, repeat, resolve, and record each step.

The engine says what the data shows for one rule on one series at one instant;
`alerts.transitions` decides what that does to the alert of its fingerprint (plain
values in and out); this module loads and locks that alert, saves the change and records
its transitions, inside the caller's transaction:

* breach, no open alert: open it PENDING (with a `for` duration) or FIRING;
* breach, PENDING for at least `for`: FIRING;
* breach, FIRING: update value, peak, count, last seen; another threshold holds:
  severity raised or lowered in the same alert; repeat due: a REPEAT transition;
* condition gone: resolve (after `keep_firing_for`, when set); a PENDING alert that
  never fired resolves without notifying;
* no data: as the rule's missing-data policy says (keep, resolve, or alert).

Every change is an `AlertTransition`; those a person should hear about carry
`notify=True` (firing, severity raised, repeat, resolved, acknowledged, acknowledgement
expired), written in the same transaction as the alert, so delivery can route them
without touching this logic. A silence matching the alert marks its transitions
`silenced` (recorded, held back); inhibition marks the alert `inhibited`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from metrics.models import Source

from . import engine
from .control import trading_control_by_rule
from .kept_resolved import KeptResolved as KeptResolved
from .kept_resolved import is_kept_resolved
from .kept_resolved import kept_resolved_release as kept_resolved_release
from .kept_resolved import still_kept as still_kept
from .models import Alert, AlertTransition, Rule, Severity, Silence
from .routing import transition_route
from .silences import SilenceMatcher, is_silenced
from .transitions import (
    Outcome,
    Standing,
    Step,
    announcement,
    breach_outcome,
    clear_outcome,
    finding_step,
)

Kind = AlertTransition.Kind


@dataclass(frozen=True)
class Finding:
    """What evaluation found for one rule on one series of one source."""

    rule: Rule
    source_id: int
    labels: dict[str, str]
    labels_key: str
    evaluation: engine.Evaluation
    now: datetime
    inhibited: bool = False
    # Loaded once per evaluation pass (None: look them up now).
    silences: Sequence[SilenceMatcher] | None = None
    # What evaluation knows already, so the firing path need not read it again: the
    # source row, its tag ids, and that no alert of this fingerprint was open.
    source: Source | None = None
    tag_ids: frozenset[int] | None = None
    known_closed: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule.pk, self.source_id, self.labels_key)


def fingerprint(rule_id: int, source_id: int, labels_key: str) -> str:
    """The identity of one problem: rule, source and series labels."""
    return hashlib.sha256(f"{rule_id}|{source_id}|{labels_key}".encode()).hexdigest()


def repeat_interval(severity: int) -> timedelta:
    """How long a firing, unacknowledged alert waits before it is announced again."""
    seconds = settings.TRADEWATCH_REPEAT_SECONDS.get(Severity(severity).label.upper())
    return timedelta(seconds=seconds if seconds is not None else 600)


def transition_record(
    alert: Alert,
    kind: str,
    now: datetime,
    *,
    actor: AbstractBaseUser | None = None,
    details: dict[str, Any] | None = None,
) -> AlertTransition:
    """Record a transition a person (or a rule change) caused, routing it if it is sent
    (never `firing`: only evaluation announces an alert)."""
    step = announcement(
        kind,
        inhibited=alert.inhibited,
        announced=alert.announced_at is not None,
        silenced=lambda: is_silenced(alert, now),
    )
    return _write(alert, step, now, actor=actor, details=details)


def _write(
    alert: Alert,
    step: Step,
    now: datetime,
    *,
    actor: AbstractBaseUser | None = None,
    details: dict[str, Any] | None = None,
    tag_ids: frozenset[int] | None = None,
) -> AlertTransition:
    transition = AlertTransition.objects.create(
        alert=alert,
        at=now,
        kind=step.kind,
        severity=alert.severity,
        value=alert.value,
        actor=actor if actor is not None and actor.pk is not None else None,  # type: ignore[misc]
        details=details or {},
        notify=step.notify,
        silenced=step.silenced,
    )
    if step.notify:
        # Silenced announcements count too: the repeat clock runs on, so a silence
        # does not turn into one held-back repeat per evaluation.
        alert.last_notified_at = now
        # The outbox rows, in this same transaction: delivery can never miss a change.
        transition_route(alert, transition, tag_ids=set(tag_ids) if tag_ids is not None else None)
    return transition


def _message(rule: Rule, source_name: str, alert: Alert) -> str:
    return render_message(
        rule, source_name, alert.value, alert.threshold_value, alert.comparison, alert.severity
    )


def render_message(
    rule: Rule,
    source_name: str,
    value: float | None,
    threshold: float | None,
    comparison: str,
    severity: int,
) -> str:
    """The alert's one-line message: the rule's template, or a plain default."""
    if rule.message_template:
        try:
            return rule.message_template.format(
                source=source_name, rule=rule.name, metric=rule.metric, value=value,
                threshold=threshold, severity=Severity(severity).label,
            )[:1000]  # fmt: skip
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            pass  # a broken template must not lose the alert; fall back below
    shown = "no data" if value is None else f"{value:g}"
    limit = "" if threshold is None else f" {comparison} {threshold:g}"
    return f"{rule.name} on {source_name}: {shown}{limit}"[:1000]


def more_extreme(comparison: str, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b) if comparison in ("<", "<=") else max(a, b)


def _open_alert(finding: Finding) -> Alert | None:
    # Only the alert row is locked (`of`): locking the joined rule and source rows too
    # would make every worker touching any alert of the same rule wait for the others.
    return (
        Alert.objects.select_for_update(of=("self",))
        .filter(
            fingerprint=finding.fingerprint, state__in=[Alert.State.PENDING, Alert.State.FIRING]
        )
        .select_related("source", "rule")
        .first()
    )


def _breach(finding: Finding) -> tuple[int, float | None, engine.Threshold | None]:
    """Severity, value and threshold of a breach (missing data alerts at the top one)."""
    evaluation = finding.evaluation
    if evaluation.threshold is not None and evaluation.severity is not None:
        return int(evaluation.severity), evaluation.value, evaluation.threshold
    top = max(finding.rule.thresholds.all(), key=lambda t: t.severity, default=None)
    return (top.severity if top else Severity.WARNING), evaluation.value, None


def apply_finding(finding: Finding) -> Alert | None:
    """Bring the alert of `finding`'s fingerprint in line with it; return that alert."""
    evaluation = finding.evaluation
    rule = finding.rule
    # Too few samples is not a verdict (win rate before 10 trades): keep the state.
    status = finding_step(evaluation.status, rule.missing_data)
    if status is None:
        return None
    with transaction.atomic():
        # Evaluation saw no open alert: insert straight away. Should another worker have
        # opened one since, the insert fails on the constraint and updates theirs.
        alert = None if finding.known_closed else _open_alert(finding)
        if status == "breach":
            if alert is None and not finding.known_closed and is_kept_resolved(finding.fingerprint):
                # A person resolved it since evaluation read it open: their resolve holds
                # (the next evaluation judges whether it may end).
                return None
            return _on_breach(finding, alert)
        if alert is None:
            return None
        return _on_clear(finding, alert, missing=status == "clear_missing")


def _on_breach(finding: Finding, alert: Alert | None) -> Alert:
    rule, now = finding.rule, finding.now
    severity, value, threshold = _breach(finding)
    comparison = threshold.comparison.value if threshold is not None else ""
    threshold_value = threshold.value if threshold is not None else None
    if alert is None:
        alert = Alert(
            fingerprint=finding.fingerprint,
            rule=rule,
            source_id=finding.source_id,
            **({"source": finding.source} if finding.source is not None else {}),
            labels=finding.labels,
            severity=severity,
            value=value,
            peak_value=value,
            threshold_value=threshold_value,
            comparison=comparison,
            first_seen=now,
            last_seen=now,
            inhibited=finding.inhibited,
        )
        outcome = breach_outcome(
            None, severity=severity, now=now, inhibited=finding.inhibited,
            for_duration=rule.for_duration, repeat_every=repeat_interval(severity),
            silenced=_silence_check(alert, finding),
        )  # fmt: skip
        alert.state = outcome.state
        alert.fired_at = now if outcome.fired else None
        # Its first transition announces it: stamped in the insert itself.
        alert.last_notified_at = now if outcome.notified else None
        alert.announced_at = now if outcome.announced else None
        try:
            # A savepoint: losing the race to another worker must not end our transaction.
            with transaction.atomic():
                alert.message = _message(rule, alert.source.name, alert)
                alert.save()
        except IntegrityError:
            # Another worker opened this alert a moment ago; update theirs instead.
            existing = _open_alert(finding)
            if existing is None:
                raise
            return _on_breach(finding, existing)
        for step in outcome.steps:
            _write(alert, step, now, details=_details(finding), tag_ids=finding.tag_ids)
        _act(alert, finding.rule, outcome, now)
        return alert

    standing = _standing(alert)
    fields = {"value", "peak_value", "last_seen", "count", "message", "condition_cleared_at"}
    alert.count += 1
    alert.last_seen = now
    alert.value = value
    alert.peak_value = more_extreme(comparison or alert.comparison, alert.peak_value, value)
    alert.condition_cleared_at = None
    if severity != alert.severity:
        alert.severity = severity
        fields.add("severity")
    if threshold is not None:
        alert.threshold_value, alert.comparison = threshold_value, comparison
        fields |= {"threshold_value", "comparison"}
    outcome = breach_outcome(
        standing, severity=severity, now=now, inhibited=finding.inhibited,
        for_duration=rule.for_duration, repeat_every=repeat_interval(severity),
        silenced=_silence_check(alert, finding),
    )  # fmt: skip
    alert.message = _message(rule, alert.source.name, alert)
    _apply(alert, outcome, finding, fields)
    _act(alert, finding.rule, outcome, now)
    return alert


def _act(alert: Alert, rule: Rule, outcome: Outcome, now: datetime) -> None:
    """The threshold's trading action when the alert fires or its severity rises.

    Only on those edges: a person's re-arm while the alert keeps firing holds until it
    gets worse. Silences and inhibition hold notifications back, never the action.
    """
    if Kind.FIRING not in outcome.kinds and Kind.SEVERITY_RAISED not in outcome.kinds:
        return
    if not rule.trading_actions:
        return
    threshold = next((t for t in rule.thresholds.all() if t.severity == alert.severity), None)
    if threshold is not None and threshold.action:
        trading_control_by_rule(alert=alert, rule=rule, threshold=threshold, now=now)


def _standing(alert: Alert) -> Standing:
    return Standing(
        state=alert.state,
        severity=alert.severity,
        first_seen=alert.first_seen,
        inhibited=alert.inhibited,
        announced_at=alert.announced_at,
        last_notified_at=alert.last_notified_at,
        acknowledged=alert.is_acknowledged,
        acknowledged_until=alert.acknowledged_until,
        condition_cleared_at=alert.condition_cleared_at,
    )


def _silence_check(alert: Alert, finding: Finding) -> Callable[[], bool]:
    """Whether a silence holds the alert back, at the severity it has when asked."""
    return lambda: is_silenced(alert, finding.now, finding.silences, tag_ids=finding.tag_ids)


def _apply(alert: Alert, outcome: Outcome, finding: Finding, fields: set[str]) -> None:
    """Bring the open alert to `outcome` and record its transitions (a resolve is left to
    `_resolve`)."""
    now = finding.now
    if outcome.inhibited != alert.inhibited:
        alert.inhibited = outcome.inhibited
        fields.add("inhibited")
    if outcome.fired:
        alert.state = Alert.State.FIRING
        alert.fired_at = now
        fields |= {"state", "fired_at"}
    if outcome.condition_cleared:
        alert.condition_cleared_at = now
        fields.add("condition_cleared_at")
    if outcome.acknowledgement_ended:
        _clear_acknowledgement(alert)
        fields |= {
            "acknowledged_at",
            "acknowledged_by",
            "acknowledged_until",
            "acknowledgement_note",
        }
    if outcome.announced:
        alert.announced_at = now
    steps = [step for step in outcome.steps if step.kind != Kind.RESOLVED]
    if not steps and not fields:
        return
    for step in steps:
        _write(alert, step, now, details=_details(finding), tag_ids=finding.tag_ids)
    fields |= {"last_notified_at", "announced_at"}
    alert.save(update_fields=sorted(fields))


def _on_clear(finding: Finding, alert: Alert, *, missing: bool) -> Alert:
    rule, now = finding.rule, finding.now
    outcome = clear_outcome(
        _standing(alert), now=now, inhibited=finding.inhibited, missing=missing,
        keep_firing_for=rule.keep_firing_for, repeat_every=repeat_interval(alert.severity),
        silenced=_silence_check(alert, finding),
    )  # fmt: skip
    if alert.state == Alert.State.PENDING:
        # It never fired: closed without telling anyone.
        alert.state = Alert.State.RESOLVED
        alert.resolved_at = now
        alert.resolution = Alert.Resolution.CONDITION_CLEARED
        alert.save(update_fields=["state", "resolved_at", "resolution"])
        AlertTransition.objects.create(
            alert=alert, at=now, kind=Kind.RESOLVED, severity=alert.severity, value=alert.value,
            details={"before_firing": True},
        )  # fmt: skip
        return alert
    _apply(alert, outcome, finding, set())
    if outcome.state != Alert.State.RESOLVED:
        return alert
    resolution = Alert.Resolution.MISSING_DATA if missing else Alert.Resolution.CONDITION_CLEARED
    return alert_close(
        alert, now, resolution=resolution, details=_details(finding), step=outcome.steps[-1]
    )


def alert_close(
    alert: Alert,
    now: datetime,
    *,
    resolution: str,
    by: AbstractBaseUser | None = None,
    details: dict[str, Any] | None = None,
    step: Step | None = None,
) -> Alert:
    """Resolve the alert and record it: `step` as the lifecycle decided it, or as it
    goes out now (a person's resolve, a rule change)."""
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = now
    alert.resolution = resolution
    alert.resolved_by = by if by is not None and by.pk is not None else None  # type: ignore[assignment]
    if step is None:
        transition_record(alert, Kind.RESOLVED, now, actor=by, details=details)
    else:
        _write(alert, step, now, actor=by, details=details)
    alert.save(
        update_fields=[
            "state", "resolved_at", "resolution", "resolved_by", "last_notified_at",
            "keep_resolved", "keep_resolved_through",
        ]
    )  # fmt: skip
    # "Until resolved" silences end with their alert.
    Silence.objects.filter(alert=alert, expired_at__isnull=True).update(expired_at=now)
    return alert


def _details(finding: Finding) -> dict[str, Any]:
    evaluation = finding.evaluation
    return {"status": evaluation.status, "value": evaluation.value, "samples": evaluation.samples}


def _clear_acknowledgement(alert: Alert) -> None:
    alert.acknowledged_at = None
    alert.acknowledged_by = None
    alert.acknowledged_until = None
    alert.acknowledgement_note = ""
