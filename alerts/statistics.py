"""Alert statistics for the operator: what fires, how often, and how fast people react.

Reads only; each figure is one aggregate query over an indexed range, so the page
stays fast with millions of alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import TruncDay
from django.utils import timezone

from .models import Alert, Severity

OPEN = [Alert.State.PENDING, Alert.State.FIRING]


@dataclass(frozen=True)
class AlertStatistics:
    since: datetime
    by_severity: list[dict[str, Any]]
    by_source: list[dict[str, Any]]
    by_rule: list[dict[str, Any]]
    by_day: list[dict[str, Any]]
    unresolved_critical: int
    last_hour: int
    mean_time_to_acknowledge: timedelta | None
    mean_time_to_resolve: timedelta | None
    noisiest_rules: list[dict[str, Any]]
    shortest_lived_rules: list[dict[str, Any]]


def _rows(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def _duration(start: str, end: str) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def alert_statistics(
    *, days: int = 30, now: datetime | None = None, top: int = 10
) -> AlertStatistics:
    """Figures over the alerts first seen in the last `days` days."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    recent: QuerySet[Alert] = Alert.objects.filter(first_seen__gte=since)
    by_severity = [
        {"severity": Severity(row["severity"]).label, "count": row["count"]}
        for row in recent.values("severity").annotate(count=Count("id")).order_by("-severity")
    ]
    by_source = _rows(
        recent.values("source__name").annotate(count=Count("id")).order_by("-count")[:top]
    )
    by_rule = _rows(
        recent.values("rule__name").annotate(count=Count("id")).order_by("-count")[:top]
    )
    by_day = _rows(
        recent.annotate(day=TruncDay("first_seen"))
        .values("day")
        .annotate(count=Count("id"))
        .order_by("day")
    )
    unresolved_critical = Alert.objects.filter(
        state__in=OPEN, severity__gte=Severity.CRITICAL
    ).count()
    last_hour = Alert.objects.filter(first_seen__gte=now - timedelta(hours=1)).count()
    times = recent.aggregate(
        acknowledge=Avg(
            _duration("first_seen", "acknowledged_at"), filter=Q(acknowledged_at__isnull=False)
        ),
        resolve=Avg(_duration("first_seen", "resolved_at"), filter=Q(resolved_at__isnull=False)),
    )
    resolved = recent.filter(resolved_at__isnull=False)
    noisiest = _rows(
        recent.values("rule__name").annotate(fired=Count("id")).order_by("-fired")[:top]
    )
    shortest = _rows(
        resolved.values("rule__name")
        .annotate(alerts=Count("id"), lifetime=Avg(_duration("first_seen", "resolved_at")))
        .filter(alerts__gte=3)
        .order_by("lifetime")[:top]
    )
    return AlertStatistics(
        since=since,
        by_severity=by_severity,
        by_source=by_source,
        by_rule=by_rule,
        by_day=by_day,
        unresolved_critical=unresolved_critical,
        last_hour=last_hour,
        mean_time_to_acknowledge=times["acknowledge"],
        mean_time_to_resolve=times["resolve"],
        noisiest_rules=noisiest,
        shortest_lived_rules=shortest,
    )
