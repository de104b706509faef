"""Source activity: time since the source last decided, traded or sent anything.

Only while the source's schedule is open, counted from the session's opening at the
earliest (a night is not idleness).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Max

from health.scoring import Status, describe_seconds
from metrics.models import Event, MetricSeries, Source, Trade
from metrics.schedules import schedule_timetable
from metrics.timetables import clock_start

from .base import CheckResult, Probe, Target, config_error, number, text

DEFAULT_MAX_IDLE_SECONDS = 1800.0
# What counts as activity: "any" is the newest of the three.
SIGNALS = ("any", "trade", "event", "sample")
# A source's decisions: trades, and `decision` events for systems that decide not to
# trade most of the time (an LLM model holding, a strategy waiting).
DECISION_EVENT = "decision"


def newest_activity(source_id: int, signal: str) -> datetime | None:
    """When the source last showed `signal` (trade, event, sample, or any of them)."""
    moments: list[datetime | None] = []
    if signal in ("any", "trade"):
        moments.append(
            Trade.objects.filter(source_id=source_id)
            .order_by("-ts")
            .values_list("ts", flat=True)
            .first()
        )
    if signal in ("any", "event"):
        moments.append(
            Event.objects.filter(source_id=source_id)
            .order_by("-ts")
            .values_list("ts", flat=True)
            .first()
        )
    if signal in ("any", "sample"):
        moments.append(
            MetricSeries.objects.filter(source_id=source_id).aggregate(newest=Max("last_ts"))[
                "newest"
            ]
        )
    known = [moment for moment in moments if moment is not None]
    return max(known, default=None)


class ActivityProbe(Probe):
    """UNHEALTHY when idle longer than `max_idle_seconds` (30 min); DEGRADED past 80 %."""

    kind = "activity"
    needs_source = True
    uses_database = True

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        number(config, "max_idle_seconds", DEFAULT_MAX_IDLE_SECONDS, minimum=1)
        if text(config, "signal", "any") not in SIGNALS:
            raise config_error("signal", f"one of {', '.join(SIGNALS)}")

    def run(self, target: Target, now: datetime) -> CheckResult:
        limit = number(target.config, "max_idle_seconds", DEFAULT_MAX_IDLE_SECONDS, minimum=1)
        assert limit is not None
        signal = text(target.config, "signal", "any") or "any"
        assert target.source_id is not None
        source = Source.objects.filter(pk=target.source_id).only("schedule_id").first()
        table = schedule_timetable(source.schedule_id if source else None)
        segment = table.segment(now)
        if not segment.open:
            # Outside the source's schedule no activity is due (the clock does not run).
            return CheckResult(Status.HEALTHY, details={"market_closed": True})
        newest = newest_activity(target.source_id, signal)
        what = "activity" if signal == "any" else f"{signal}"
        if newest is None:
            return CheckResult.failed(Status.UNHEALTHY, f"no {what} recorded yet")
        newest = clock_start(newest, segment.since) or newest  # from the session's opening
        idle = max(0.0, (now - newest).total_seconds())
        details = {"idle_seconds": round(idle, 3), "limit_seconds": limit, "signal": signal}
        if idle > limit:
            return CheckResult(
                Status.UNHEALTHY,
                issues=[
                    f"no {what} for {describe_seconds(idle)} (limit {describe_seconds(limit)})"
                ],
                details=details,
            )
        if idle > 0.8 * limit:
            return CheckResult(
                Status.DEGRADED,
                warnings=[f"last {what} {describe_seconds(idle)} ago"],
                details=details,
            )
        return CheckResult(Status.HEALTHY, details=details)
