"""Quiet updates: the breaches that change nothing a person must hear about.

Most evaluations of an open alert find the same problem again. Those need no row lock,
no timeline entry and no notification: evaluation collects them as `QuietUpdate`s and
applies them in one bulk UPDATE (`alerts_touch`); anything else takes the full path of
`alerts.lifecycle.apply_finding`. `OpenAlert` is what evaluation preloads of an open
alert to tell the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from .lifecycle import Finding, more_extreme, render_message, repeat_interval
from .models import Alert
from .silences import any_matches


@dataclass(frozen=True)
class OpenAlert:
    """What evaluation preloads of an open alert, to tell a quiet repeat from a change."""

    id: int
    rule_id: int
    severity: int
    state: str
    first_seen: datetime
    last_notified_at: datetime | None
    inhibited: bool
    acknowledged_at: datetime | None
    acknowledged_until: datetime | None
    threshold_value: float | None
    comparison: str
    peak_value: float | None
    announced_at: datetime | None
    condition_cleared_at: datetime | None
    # When it was last found (a breach): out of session, whether the rule's missing-data
    # policy was applied since the close.
    last_seen: datetime


def open_alert_of(alert: Alert) -> OpenAlert:
    """What evaluation would have preloaded of this open alert."""
    return OpenAlert(
        id=alert.pk,
        rule_id=alert.rule_id,
        severity=alert.severity,
        state=alert.state,
        first_seen=alert.first_seen,
        last_notified_at=alert.last_notified_at,
        inhibited=alert.inhibited,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_until=alert.acknowledged_until,
        threshold_value=alert.threshold_value,
        comparison=alert.comparison,
        peak_value=alert.peak_value,
        announced_at=alert.announced_at,
        condition_cleared_at=alert.condition_cleared_at,
        last_seen=alert.last_seen,
    )


@dataclass(frozen=True)
class QuietUpdate:
    """A breach that only moves counters: value, peak, count, last seen, message."""

    alert_id: int
    value: float | None
    peak_value: float | None
    message: str


def quiet_update(finding: Finding, current: OpenAlert, source_name: str) -> QuietUpdate | None:
    """The update for a breach that changes nothing a person must hear about, or None.

    Most evaluations of an open alert find the same problem again; those need no
    row lock, no timeline entry and no notification, only one bulk UPDATE (see
    `alerts_touch`). Anything else (severity, firing, repeat due, inhibition,
    acknowledgement expiry, another threshold) takes the full path.
    """
    evaluation, rule, now = finding.evaluation, finding.rule, finding.now
    threshold = evaluation.threshold
    if evaluation.status != "breach" or threshold is None or evaluation.severity is None:
        return None
    severity = int(evaluation.severity)
    if severity != current.severity or finding.inhibited != current.inhibited:
        return None
    if threshold.value != current.threshold_value:
        return None
    if current.acknowledged_until is not None and current.acknowledged_until <= now:
        return None
    if current.state == Alert.State.PENDING:
        if now - current.first_seen >= rule.for_duration:
            return None
    elif (
        current.announced_at is None
        and not current.inhibited
        and not (
            finding.silences is not None
            and finding.tag_ids is not None
            and any_matches(finding.silences, severity, finding.source_id, finding.tag_ids, rule.pk)
        )
    ):
        return None  # its held-back firing is due now, unless a silence holds it still
    elif (
        current.acknowledged_at is None
        and not current.inhibited
        and (
            current.last_notified_at is None
            or now - current.last_notified_at >= repeat_interval(severity)
        )
    ):
        return None
    comparison = threshold.comparison.value
    return QuietUpdate(
        alert_id=current.id,
        value=evaluation.value,
        peak_value=more_extreme(comparison, current.peak_value, evaluation.value),
        message=render_message(
            rule, source_name, evaluation.value, threshold.value, comparison, severity
        ),
    )


def alerts_touch(updates: Sequence[QuietUpdate], now: datetime) -> None:
    """Apply quiet updates in one statement; alerts resolved meanwhile are left alone."""
    if not updates:
        return
    table = Alert._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS a SET count = a.count + 1, last_seen = %s, value = u.value, "
                "peak_value = u.peak, message = u.message, condition_cleared_at = NULL "
                "FROM unnest(%s::int8[], %s::float8[], %s::float8[], %s::text[]) "
                "AS u(id, value, peak, message) WHERE a.id = u.id AND a.state <> 'resolved'",
                [
                    now,
                    [u.alert_id for u in updates],
                    [u.value for u in updates],
                    [u.peak_value for u in updates],
                    [u.message for u in updates],
                ],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET count = count + 1, last_seen = %s, value = %s, "
                "peak_value = %s, message = %s, condition_cleared_at = NULL "
                "WHERE id = %s AND state <> 'resolved'",
                [(now, u.value, u.peak_value, u.message, u.alert_id) for u in updates],
            )
