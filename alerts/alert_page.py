"""What an alert's admin page shows: its figures, the metric around the firing with the
threshold, the timeline, and the notifications sent with their results.

Each part is one or two index reads, whatever the size of the alerts, samples and
outbox tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from django.utils import timezone

from core.query_params import Aggregation
from metrics.queries import metric_query

from .models import Alert, AlertTransition, Notification

TIMELINE_LIMIT: Final = 200
NOTIFICATIONS_LIMIT: Final = 100
# About this many points on the chart, whatever its span.
CHART_POINTS: Final = 200
CHART_BEFORE_MIN: Final = timedelta(hours=1)
CHART_BEFORE_MAX: Final = timedelta(hours=12)
CHART_AFTER: Final = timedelta(minutes=15)
CHART_AFTER_MAX: Final = timedelta(days=1)


def figure(value: float | None) -> str:
    """A value as a person reads it: six significant digits as the alert's message has them
    (`4.5`, `0.0123`), large ones whole (`1234567`, not `1.23457e+06`); a dash for none."""
    if value is None:
        return "—"
    text = f"{value:g}"
    if "e" in text and abs(value) >= 1:
        text = f"{value:.0f}"
    return text


def alert_figures(alert: Alert) -> dict[str, str]:
    """The alert's value, threshold (with its comparison) and peak, for its summary."""
    threshold = (
        "—"
        if alert.threshold_value is None
        else f"{alert.comparison} {figure(alert.threshold_value)}".strip()
    )
    return {
        "value": figure(alert.value),
        "threshold": threshold,
        "peak": figure(alert.peak_value),
    }


def chart_window(
    alert: Alert, *, rule_window: timedelta, now: datetime, last_value_rule: bool = False
) -> tuple[datetime, datetime]:
    """Around the firing: from three rule windows before it (between an hour and half a
    day; an hour for rules on the last value) to a little after it resolved, or now, and
    at most a day after it fired."""
    fired = alert.fired_at or alert.first_seen
    before = min(max(CHART_BEFORE_MIN, rule_window * 3), CHART_BEFORE_MAX)
    if last_value_rule:
        # The rule judges the newest value: its window says nothing of what to look at.
        before = CHART_BEFORE_MIN
    last = alert.resolved_at or max(alert.last_seen, fired)
    end = min(now, max(last, fired + timedelta(minutes=5)) + CHART_AFTER, fired + CHART_AFTER_MAX)
    return fired - before, max(end, fired)


def _aggregation(comparison: str) -> Aggregation:
    # Show the extremes the rule looks for: a spike above a limit must not be averaged away.
    if comparison in (">", ">="):
        return "max"
    if comparison in ("<", "<="):
        return "min"
    return "avg"


def alert_chart(alert: Alert, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The alert's metric around the firing, or None when its rule watches no metric
    series (event and health rules)."""
    now = now or timezone.now()
    rule = alert.rule
    if rule.kind in (rule.Kind.EVENT, rule.Kind.HEALTH):
        return None
    start, end = chart_window(
        alert,
        rule_window=rule.window,
        now=now,
        last_value_rule=rule.aggregation == rule.Aggregation.LAST,
    )
    step = timedelta(seconds=max(1, int((end - start).total_seconds() // CHART_POINTS)))
    labels = {str(key): str(value) for key, value in (alert.labels or {}).items()}
    result = metric_query(
        source=alert.source,
        name=rule.metric,
        labels=labels,
        start=start,
        end=end,
        step=step,
        aggregation=_aggregation(alert.comparison),
    )
    points = result.series[0].points if result.series else []
    return {
        "metric": rule.metric,
        "labels": labels,
        "points": [[ts.isoformat(), value] for ts, value in points],
        "threshold": alert.threshold_value,
        "comparison": alert.comparison,
        "fired_at": (alert.fired_at or alert.first_seen).isoformat(),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "step_seconds": int(step.total_seconds()),
    }


def alert_timeline(alert: Alert, *, limit: int = TIMELINE_LIMIT) -> list[AlertTransition]:
    """The newest `limit` entries of the timeline, oldest first (who acted, joined)."""
    newest = list(
        AlertTransition.objects.filter(alert=alert)
        .select_related("actor")
        .order_by("-at", "-id")[:limit]
    )
    return newest[::-1]


def alert_notifications(alert: Alert, *, limit: int = NOTIFICATIONS_LIMIT) -> list[Notification]:
    """Notifications of the alert, newest first, with their channel."""
    return list(
        Notification.objects.filter(alert=alert)
        .select_related("channel")
        .order_by("-created_at", "-id")[:limit]
    )
