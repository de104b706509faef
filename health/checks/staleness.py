"""Metric or artifact staleness: a named metric or artifact not updated within N hours."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Max

from health.scoring import Status, describe_seconds
from metrics.models import Event, MetricSeries

from .base import CheckResult, Probe, Target, config_error, number, text

DEFAULT_MAX_AGE_HOURS = 24.0
ARTIFACT_EVENT = "artifact_updated"


def newest_update(source_id: int, config: dict[str, Any]) -> tuple[str, datetime | None]:
    """What is watched, in words, and when it was last updated."""
    metric = text(config, "metric")
    if metric:
        newest = MetricSeries.objects.filter(source_id=source_id, name=metric).aggregate(
            newest=Max("last_ts")
        )["newest"]
        return f"metric {metric}", newest
    artifact = text(config, "artifact")
    events = Event.objects.filter(source_id=source_id, type=ARTIFACT_EVENT)
    if artifact:
        events = events.filter(context__artifact=artifact)
    newest = events.order_by("-ts").values_list("ts", flat=True).first()
    return (f"artifact {artifact}" if artifact else "model artifact"), newest


class StalenessProbe(Probe):
    """UNHEALTHY when not updated within `max_age_hours` (24); DEGRADED past 80 % of it.

    `metric`: a metric name (its newest sample, any labels); otherwise the newest
    `artifact_updated` event, of the artifact named `artifact` when given.
    """

    kind = "staleness"
    needs_source = True
    uses_database = True

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        number(config, "max_age_hours", DEFAULT_MAX_AGE_HOURS, minimum=0.001)
        text(config, "metric")
        text(config, "artifact")
        if config.get("metric") and config.get("artifact"):
            raise config_error("metric", "give a metric or an artifact, not both")

    def run(self, target: Target, now: datetime) -> CheckResult:
        hours = number(target.config, "max_age_hours", DEFAULT_MAX_AGE_HOURS, minimum=0.001)
        assert hours is not None
        assert target.source_id is not None
        limit = hours * 3600
        what, newest = newest_update(target.source_id, target.config)
        if newest is None:
            return CheckResult.failed(Status.UNHEALTHY, f"{what} never updated")
        age = max(0.0, (now - newest).total_seconds())
        details = {"age_seconds": round(age, 3), "limit_seconds": limit, "watched": what}
        if age > limit:
            return CheckResult(
                Status.UNHEALTHY,
                issues=[f"{what} not updated for {describe_seconds(age)} "
                        f"(limit {describe_seconds(limit)})"],
                details=details,
            )  # fmt: skip
        if age > 0.8 * limit:
            return CheckResult(
                Status.DEGRADED, warnings=[f"{what} updated {describe_seconds(age)} ago"],
                details=details,
            )  # fmt: skip
        return CheckResult(Status.HEALTHY, details=details)
