"""Applying evaluations to alerts: open, escalate, repeat, resolve, and record each step.

The engine says what the data shows for one rule on one series at one instant; this
module turns that into alert rows, by fingerprint, inside the caller's transaction:

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from metrics.models import Event, Source

from . import engine
from .models import Alert, AlertTransition, Rule, Severity, Silence
from .routing import transition_route
from .silences import SilenceMatcher, is_silenced

Kind = AlertTransition.Kind

# Transitions that should reach people; the others are for the timeline only.
NOTIFYING = frozenset(
    {
        Kind.FIRING,
        Kind.SEVERITY_RAISED,
        Kind.REPEAT,
        Kind.RESOLVED,
        Kind.ACKNOWLEDGED,
        Kind.ACKNOWLEDGEMENT_EXPIRED,
    }
)


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


def _record(
    alert: Alert,
    kind: str,
    now: datetime,
    *,
    actor: AbstractBaseUser | None = None,
    details: dict[str, Any] | None = None,
    silences: Sequence[SilenceMatcher] | None = None,
    tag_ids: frozenset[int] | None = None,
) -> AlertTransition:
    notify = kind in NOTIFYING and not alert.inhibited
    silenced = notify and is_silenced(alert, now, silences, tag_ids=tag_ids)
    if notify and not silenced and alert.announced_at is None:
        if kind == Kind.FIRING:
            alert.announced_at = now
        else:
            # A receiver opens its incident on `firing`: nothing else about an alert is
            # sent before its firing was (it stays on the timeline).
            notify = False
    transition = AlertTransition.objects.create(
        alert=alert,
        at=now,
        kind=kind,
        severity=alert.severity,
        value=alert.value,
        actor=actor if actor is not None and actor.pk is not None else None,  # type: ignore[misc]
        details=details or {},
        notify=notify,
        silenced=silenced,
    )
    if notify:
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
    status: str = evaluation.status
    if status in ("no_data", "insufficient_data"):
        # Too few samples is not a verdict (win rate before 10 trades): keep the state.
        if status == "insufficient_data" or rule.missing_data == Rule.MissingData.KEEP:
            return None
        status = "breach" if rule.missing_data == Rule.MissingData.ALERT else "clear_missing"
    with transaction.atomic():
        # Evaluation saw no open alert: insert straight away. Should another worker have
        # opened one since, the insert fails on the constraint and updates theirs.
        alert = None if finding.known_closed else _open_alert(finding)
        if status == "breach":
            if alert is None and not finding.known_closed and _kept_resolved(finding):
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
        fire_now = rule.for_duration <= timedelta(0)
        alert = Alert(
            fingerprint=finding.fingerprint,
            rule=rule,
            source_id=finding.source_id,
            **({"source": finding.source} if finding.source is not None else {}),
            labels=finding.labels,
            state=Alert.State.FIRING if fire_now else Alert.State.PENDING,
            severity=severity,
            value=value,
            peak_value=value,
            threshold_value=threshold_value,
            comparison=comparison,
            first_seen=now,
            fired_at=now if fire_now else None,
            last_seen=now,
            inhibited=finding.inhibited,
            # The FIRING transition below announces it: stamped in the insert itself.
            last_notified_at=now if fire_now and not finding.inhibited else None,
        )
        if (
            fire_now
            and not finding.inhibited
            and not is_silenced(alert, now, finding.silences, tag_ids=finding.tag_ids)
        ):
            alert.announced_at = now
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
        _record(
            alert, Kind.FIRING if fire_now else Kind.PENDING, now,
            details=_details(finding), silences=finding.silences,
            tag_ids=finding.tag_ids,
        )  # fmt: skip
        return alert

    fields = {"value", "peak_value", "last_seen", "count", "message", "condition_cleared_at"}
    alert.count += 1
    alert.last_seen = now
    alert.value = value
    alert.peak_value = more_extreme(comparison or alert.comparison, alert.peak_value, value)
    alert.condition_cleared_at = None
    kinds: list[str] = []
    _inhibition_follow(alert, finding, fields, kinds)
    if alert.state == Alert.State.PENDING and now - alert.first_seen >= rule.for_duration:
        alert.state = Alert.State.FIRING
        alert.fired_at = now
        fields |= {"state", "fired_at"}
        kinds.append(Kind.FIRING)
    if severity != alert.severity:
        raised = severity > alert.severity
        alert.severity = severity
        fields.add("severity")
        if alert.state == Alert.State.FIRING and Kind.FIRING not in kinds:
            kinds.append(Kind.SEVERITY_RAISED if raised else Kind.SEVERITY_LOWERED)
    if threshold is not None:
        alert.threshold_value, alert.comparison = threshold_value, comparison
        fields |= {"threshold_value", "comparison"}
    _due(alert, finding, fields, kinds)
    alert.message = _message(rule, alert.source.name, alert)
    _record_all(alert, finding, kinds, fields)
    return alert


def _inhibition_follow(alert: Alert, finding: Finding, fields: set[str], kinds: list[str]) -> None:
    """Mark the alert inhibited, or no longer, as evaluation found it now."""
    if finding.inhibited != alert.inhibited:
        alert.inhibited = finding.inhibited
        fields.add("inhibited")
        kinds.append(Kind.INHIBITED if finding.inhibited else Kind.UNINHIBITED)


def _due(alert: Alert, finding: Finding, fields: set[str], kinds: list[str]) -> None:
    """Add what time has made due on an open alert to `kinds`: its firing held back by
    inhibition or a silence that no longer holds, an ended acknowledgement (pending too:
    recorded then, not sent), a repeat."""
    now = finding.now
    firing = alert.state == Alert.State.FIRING
    if (
        firing
        and alert.announced_at is None
        and not alert.inhibited
        and Kind.FIRING not in kinds
        and not is_silenced(alert, now, finding.silences, tag_ids=finding.tag_ids)
    ):
        # Announced now, as `firing` (with the severity it has now), not as a repeat or a
        # change: a receiver opens its incident on `firing`.
        kinds[:] = [k for k in kinds if k not in (Kind.SEVERITY_RAISED, Kind.SEVERITY_LOWERED)]
        kinds.append(Kind.FIRING)
    if alert.is_acknowledged and alert.acknowledged_until and alert.acknowledged_until <= now:
        _clear_acknowledgement(alert)
        fields |= {
            "acknowledged_at",
            "acknowledged_by",
            "acknowledged_until",
            "acknowledgement_note",
        }
        kinds.append(Kind.ACKNOWLEDGEMENT_EXPIRED)
    if not firing:
        return
    if (
        # A change recorded now that reaches people is news enough; one that does not
        # (a lowered severity, inhibition ending) leaves a due repeat due.
        not any(kind in NOTIFYING for kind in kinds)
        and not alert.is_acknowledged
        and not alert.inhibited
        and (
            alert.last_notified_at is None
            or now - alert.last_notified_at >= repeat_interval(alert.severity)
        )
    ):
        kinds.append(Kind.REPEAT)


def _record_all(alert: Alert, finding: Finding, kinds: list[str], fields: set[str]) -> None:
    if not kinds and not fields:
        return
    for kind in kinds:
        _record(
            alert, kind, finding.now, details=_details(finding), silences=finding.silences,
            tag_ids=finding.tag_ids,
        )  # fmt: skip
    fields |= {"last_notified_at", "announced_at"}
    alert.save(update_fields=sorted(fields))


def _on_clear(finding: Finding, alert: Alert, *, missing: bool) -> Alert:
    rule, now = finding.rule, finding.now
    if alert.state == Alert.State.PENDING:
        # It never fired: close it without telling anyone.
        alert.state = Alert.State.RESOLVED
        alert.resolved_at = now
        alert.resolution = Alert.Resolution.CONDITION_CLEARED
        alert.save(update_fields=["state", "resolved_at", "resolution"])
        AlertTransition.objects.create(
            alert=alert, at=now, kind=Kind.RESOLVED, severity=alert.severity, value=alert.value,
            details={"before_firing": True},
        )  # fmt: skip
        return alert
    fields: set[str] = set()
    kinds: list[str] = []
    _inhibition_follow(alert, finding, fields, kinds)
    if not missing and rule.keep_firing_for > timedelta(0):
        if alert.condition_cleared_at is None:
            alert.condition_cleared_at = now
            fields.add("condition_cleared_at")
            kinds.append(Kind.CONDITION_CLEARED)
        if now - alert.condition_cleared_at < rule.keep_firing_for:
            # Still firing: what falls due on a firing alert falls due now too.
            _due(alert, finding, fields, kinds)
            _record_all(alert, finding, kinds, fields)
            return alert
    # The resolve goes out as the inhibition stands now, not as it stood before.
    _record_all(alert, finding, kinds, fields)
    resolution = Alert.Resolution.MISSING_DATA if missing else Alert.Resolution.CONDITION_CLEARED
    return _resolve(
        alert, now, resolution=resolution, details=_details(finding), silences=finding.silences
    )


def _resolve(
    alert: Alert,
    now: datetime,
    *,
    resolution: str,
    by: AbstractBaseUser | None = None,
    details: dict[str, Any] | None = None,
    silences: Sequence[SilenceMatcher] | None = None,
) -> Alert:
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = now
    alert.resolution = resolution
    alert.resolved_by = by if by is not None and by.pk is not None else None  # type: ignore[assignment]
    _record(alert, Kind.RESOLVED, now, actor=by, details=details, silences=silences)
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


class AlertClosed(Exception):
    """The alert is resolved already: nothing to acknowledge or resolve."""


def alert_acknowledge(
    *,
    alert_id: int,
    by: AbstractBaseUser,
    note: str = "",
    until: datetime | None = None,
    now: datetime | None = None,
) -> Alert:
    """A person takes the alert: repeats stop until `until` (or until it resolves)."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",)).select_related("source").get(pk=alert_id)
        )
        if not alert.is_open:
            raise AlertClosed(f"Alert {alert_id} is resolved.")
        if until is not None and until <= now:
            raise ValueError("The acknowledgement must last beyond now.")
        alert.acknowledged_by = by  # type: ignore[assignment]
        alert.acknowledged_at = now
        alert.acknowledged_until = until
        alert.acknowledgement_note = note[:1000]
        _record(
            alert,
            Kind.ACKNOWLEDGED,
            now,
            actor=by,
            details={"note": note, "until": until and until.isoformat()},
        )
        alert.save(
            update_fields=[
                "acknowledged_by", "acknowledged_at", "acknowledged_until",
                "acknowledgement_note", "last_notified_at",
            ]
        )  # fmt: skip
    return alert


def alert_resolve(
    *, alert_id: int, by: AbstractBaseUser, note: str = "", now: datetime | None = None
) -> Alert:
    """A person closes the alert; if the condition still holds, a new alert opens later."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("source", "rule")
            .get(pk=alert_id)
        )
        if not alert.is_open:
            raise AlertClosed(f"Alert {alert_id} is resolved already.")
        rule = alert.rule
        # (Its condition cleared already, in `keep_firing_for`: the next breach is news.)
        if rule.kind != Rule.Kind.HEALTH and alert.condition_cleared_at is None:
            # Evaluation judges the same data again within seconds: without this, the
            # problem the person just closed would open again as a new alert.
            Alert.objects.filter(fingerprint=alert.fingerprint, keep_resolved=True).update(
                keep_resolved=False
            )
            alert.keep_resolved = True
            if rule.kind == Rule.Kind.EVENT:
                alert.keep_resolved_through = Event.objects.filter(
                    source_id=alert.source_id, type=rule.metric
                ).aggregate(newest=Max("ts"))["newest"]
        return _resolve(
            alert, now, resolution=Alert.Resolution.BY_PERSON, by=by, details={"note": note}
        )


def alert_resolve_obsolete(*, alert_id: int, now: datetime | None = None) -> Alert | None:
    """Resolve an open alert whose rule no longer judges its source (disabled, rescoped)."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("source")
            .filter(pk=alert_id, state__in=[Alert.State.PENDING, Alert.State.FIRING])
            .first()
        )
        if alert is None:
            return None
        return _resolve(alert, now, resolution=Alert.Resolution.RULE_CHANGED)


@dataclass(frozen=True)
class KeptResolved:
    """A problem a person resolved, kept resolved while it lasts (see `still_kept`)."""

    id: int
    severity: int
    # Event rules: the newest event when it was resolved.
    through: datetime | None


def still_kept(kept: KeptResolved, evaluation: engine.Evaluation, newest: datetime | None) -> bool:
    """Whether a person's resolve still holds against what evaluation found now.

    It holds while the same problem goes on: a breach no worse than the one resolved
    (judged with its threshold's clear value, as if it still fired) and, for event
    rules, no event newer than those the person saw (`newest`: the newest point
    judged). A clear condition ends it, so the next breach is a new alert; so does a
    worse severity or a new event, which are new problems. Too little data to judge
    keeps it.
    """
    if evaluation.status == "insufficient_data":
        return True
    if evaluation.status != "breach" or evaluation.severity is None:
        return False
    if int(evaluation.severity) > kept.severity:
        return False
    return not (kept.through is not None and newest is not None and newest > kept.through)


def kept_resolved_release(*, alert_id: int) -> None:
    """End a person's resolve: the problem's next breach opens a new alert."""
    Alert.objects.filter(pk=alert_id, keep_resolved=True).update(keep_resolved=False)


def _kept_resolved(finding: Finding) -> bool:
    return Alert.objects.filter(fingerprint=finding.fingerprint, keep_resolved=True).exists()
