"""What the operator's dashboard shows, read in a fixed number of queries.

However many sources, samples and alerts there are, one dashboard state costs the
same dozen queries: scores come from `health.selectors` in bulk, firing alerts are a
page of an index, alerts per hour an aggregate over the last day's rows, and a
chart one source's two series over one range, bucketed in SQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, Severity
from alerts.selectors import without_watchdog
from health.models import HealthCheck
from health.scoring import Status, system_rollup
from health.selectors import HealthReading, health_read
from metrics.control import Control, controls_in_force, states_of
from metrics.models import Source, TradingControl
from metrics.queries import metric_query

# Enough for a bad day on one screen; the alert list has the rest.
FIRING_LIMIT: Final = 50
EQUITY: Final = "equity"
DRAWDOWN: Final = "drawdown_pct"


@dataclass(frozen=True)
class ChartRange:
    """A selectable chart range and the bucket width that keeps it near 100 points."""

    span: timedelta
    step: timedelta


RANGES: Final[dict[str, ChartRange]] = {
    "1h": ChartRange(timedelta(hours=1), timedelta(minutes=1)),
    "6h": ChartRange(timedelta(hours=6), timedelta(minutes=5)),
    "24h": ChartRange(timedelta(hours=24), timedelta(minutes=15)),
    "7d": ChartRange(timedelta(days=7), timedelta(hours=2)),
}
DEFAULT_RANGE: Final = "24h"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def alert_row(alert: Alert) -> dict[str, Any]:
    """One firing alert as the dashboard lists it (rule and source joined)."""
    return {
        "id": alert.pk,
        "severity": alert.severity,
        "severity_label": str(Severity(alert.severity).label),
        "rule": alert.rule.name,
        "source": alert.source.name,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold_value,
        "fired_at": _iso(alert.fired_at or alert.first_seen),
        "last_seen": _iso(alert.last_seen),
        "count": alert.count,
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
        "url": reverse("admin:alerts_alert_change", args=[alert.pk]),
        "acknowledge_url": reverse("admin:dashboard_acknowledge", args=[alert.pk]),
    }


def firing_alerts(*, limit: int = FIRING_LIMIT) -> dict[str, Any]:
    """Firing alerts, most severe then newest first, and how many fire per severity.

    Tradewatch's watchdog is left out: it always fires, for a dead man's switch, and is
    no problem for the person reading the dashboard.
    """
    firing = without_watchdog(Alert.objects.filter(state=Alert.State.FIRING))
    counts = dict(firing.values_list("severity").annotate(n=Count("id")).order_by())
    rows = firing.select_related("rule", "source", "acknowledged_by").order_by(
        "-severity", "-last_seen", "-id"
    )[:limit]
    return {
        "total": sum(counts.values()),
        "by_severity": [
            {"severity": value, "label": str(label), "count": counts.get(value, 0)}
            for value, label in reversed(Severity.choices)
        ],
        "alerts": [alert_row(alert) for alert in rows],
    }


def alerts_per_hour(*, now: datetime) -> list[dict[str, Any]]:
    """Alerts opened in each of the last 24 hours, oldest hour first, empty hours as 0."""
    current = now.replace(minute=0, second=0, microsecond=0)
    start = current - timedelta(hours=23)
    counted = {
        hour: n
        for hour, n in Alert.objects.filter(first_seen__gte=start)
        .annotate(hour=TruncHour("first_seen"))
        .values_list("hour")
        .annotate(n=Count("id"))
        .order_by()
    }
    hours = [start + timedelta(hours=i) for i in range(24)]
    return [{"hour": hour.isoformat(), "count": counted.get(hour, 0)} for hour in hours]


def _control_url(state: str, scope: str, target: int | None) -> str:
    params = f"state={state}&scope={scope}&next=/admin/"
    return f"{reverse('admin:trading_control')}?{params}" + (
        f"&target={target}" if target is not None else ""
    )


def trading_banners(*, now: datetime) -> list[dict[str, Any]]:
    """One banner per control holding trading back, the global one first, then tags, then
    sources (each with where to re-arm it)."""
    controls = controls_in_force(now)
    ids = [c.source_id for c in controls if c.source_id is not None]
    names = dict(Source.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    return [_banner(control, names) for control in controls]


def _banner(control: Control, names: dict[int, str]) -> dict[str, Any]:
    target: int | None = None
    if control.scope == TradingControl.Scope.SOURCE and control.source_id is not None:
        target = control.source_id
        what = f"{names.get(control.source_id, control.source_id)} is"
    elif control.scope == TradingControl.Scope.TAG:
        target = control.tag_id
        what = f"Every source tagged {control.tag} is"
    else:
        what = "Every source is"
    state = "halted" if control.state == TradingControl.State.HALTED else "reduce only"
    return {
        "scope": control.scope,
        "state": control.state,
        "text": f"{what} {state}: {control.reason}",
        "set_by": control.set_by or control.set_by_rule or "command line",
        "since": _iso(control.set_at),
        "expires_at": _iso(control.expires_at),
        "alert_url": reverse("admin:alerts_alert_change", args=[control.alert_id])
        if control.alert_id
        else None,
        "rearm_url": _control_url("active", control.scope, target),
    }


def sources_overview(reading: HealthReading) -> list[dict[str, Any]]:
    """Every watched source with its score, last heartbeat and open alerts, worst first."""
    states = states_of([item.source.pk for item in reading.sources])
    return [
        {
            "id": item.source.pk,
            "name": item.source.name,
            "kind": item.source.kind,
            "score": item.score.score,
            "status": item.score.status.value,
            "status_label": item.score.status.label,
            "issues": [*item.score.issues, *item.score.warnings, *item.score.notes],
            "heartbeat": _iso(item.facts.heartbeat),
            # Outside its schedule a quiet source is "market closed", not lapsed.
            "market_closed": item.facts.market_closed,
            "open_alerts": item.facts.open_alerts,
            "url": reverse("admin:metrics_source_change", args=[item.source.pk]),
            "trading_state": states[item.source.pk].state,
            "control_urls": {
                "halt": _control_url("halted", "source", item.source.pk),
                "reduce": _control_url("reduce_only", "source", item.source.pk),
                "rearm": _control_url("active", "source", item.source.pk),
            },
        }
        for item in reading.sources
    ]


def chart_points(
    *, source: Source, name: str, start: datetime, end: datetime, step: timedelta
) -> list[list[Any]]:
    """[time, value] pairs of a source's unlabelled series, averaged per bucket."""
    result = metric_query(
        source=source, name=name, labels={}, start=start, end=end, step=step, aggregation="avg"
    )
    if not result.series:
        return []
    return [[ts.isoformat(), value] for ts, value in result.series[0].points]


def source_charts(*, source: Source | None, range_key: str, now: datetime) -> dict[str, Any]:
    """Equity and drawdown of one source over a range (empty when it sends neither)."""
    chosen = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    key = range_key if range_key in RANGES else DEFAULT_RANGE
    if source is None:
        return {"source": None, "range": key, "equity": [], "drawdown": []}
    start = now - chosen.span
    return {
        "source": source.pk,
        "source_name": source.name,
        "range": key,
        "equity": chart_points(source=source, name=EQUITY, start=start, end=now, step=chosen.step),
        "drawdown": chart_points(
            source=source, name=DRAWDOWN, start=start, end=now, step=chosen.step
        ),
    }


def dashboard_state(
    *,
    chart_source_id: int | None = None,
    range_key: str = DEFAULT_RANGE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything the dashboard shows, JSON-ready: the page renders and polls this."""
    now = now or timezone.now()
    reading = health_read(now=now)
    sources = sources_overview(reading)
    checks = list(
        HealthCheck.objects.filter(enabled=True).values_list("name", "status").order_by("name")
    )
    statuses = [*reading.statuses, *(Status(status) for _, status in checks)]
    own = reading.own.score if reading.own is not None else None
    rollup = system_rollup(statuses)
    by_status = Counter(status.value for status in statuses)
    ids = {row["id"] for row in sources}
    if chart_source_id not in ids:
        chart_source_id = next(iter(row["id"] for row in sources), None)
    chart_source = None
    if chart_source_id is not None:
        chart_source = Source(pk=chart_source_id, name=next(
            row["name"] for row in sources if row["id"] == chart_source_id
        ))  # fmt: skip
    return {
        "generated_at": now.isoformat(),
        "system": {
            "status": rollup.value,
            "status_label": rollup.label,
            "counts": {status.value: by_status.get(status.value, 0) for status in Status},
            "unhealthy_checks": [name for name, status in checks if status != Status.HEALTHY],
            # Tradewatch's own source's firing alerts (beat, workers, queues, delivery).
            "tradewatch_issues": own.issues if own is not None else [],
        },
        "firing": firing_alerts(),
        "trading": {
            "banners": trading_banners(now=now),
            "halt_all_url": _control_url("halted", "all", None),
        },
        "sources": sources,
        "alerts_per_hour": alerts_per_hour(now=now),
        "chart": source_charts(source=chart_source, range_key=range_key, now=now),
        "ranges": list(RANGES),
    }
