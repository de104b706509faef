"""Rule backtest: how a rule (or an edit of its thresholds) would have fired on history.

`backtest_run` replays a rule over stored samples, trades and events exactly as the
live engine judges (`replay`), moves in-memory alerts through the lifecycle's decisions
and routes their notifications as the enabled policies would (`timeline`), and answers
plain JSON values (`answer`). It never writes an alert, a transition, a notification or
an M-of-N history. Long runs go to a worker as a job whose progress lives in the cache
(`jobs`); the admin page, the API and the CLI all call `backtest_run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from alerts import engine
from alerts.models import Policy
from alerts.routing import channel_floors, enabled_policies
from alerts.threshold_checks import thresholds_problem
from metrics.models import Source

from .answer import replay_answer
from .replay import BacktestRefused, Progress, Run, backtest_rule, default_sources, rule_replay
from .timeline import Escalation, Routing

__all__ = [
    "BacktestRefused",
    "BacktestRequest",
    "Tier",
    "backtest_run",
    "default_sources",
    "request_check",
    "retention",
]

# How many sources one backtest replays at most.
MAX_SOURCES = 50


@dataclass(frozen=True)
class Tier:
    """One threshold of an edit: severity (10..60), comparison, value, clear value."""

    severity: int
    comparison: str
    value: float
    clear_value: float | None = None


@dataclass(frozen=True)
class BacktestRequest:
    """What to replay: a rule, on which sources (None: those it applies to), over which
    period, and optionally with edited thresholds judged beside the saved ones."""

    rule_id: int
    start: datetime
    end: datetime
    source_ids: tuple[int, ...] | None = None
    thresholds: tuple[Tier, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source_ids": None if self.source_ids is None else list(self.source_ids),
            "thresholds": None
            if self.thresholds is None
            else [[t.severity, t.comparison, t.value, t.clear_value] for t in self.thresholds],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestRequest:
        return cls(
            rule_id=int(data["rule_id"]),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            source_ids=None if data["source_ids"] is None else tuple(data["source_ids"]),
            thresholds=None
            if data["thresholds"] is None
            else tuple(Tier(*row) for row in data["thresholds"]),
        )


def retention() -> timedelta:
    """How far back samples are kept: the furthest a backtest can look."""
    return timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS)


def edited_thresholds(tiers: Sequence[Tier]) -> tuple[engine.Threshold, ...]:
    """An edit's thresholds, checked as the admin checks a rule's before saving them."""
    problem = thresholds_problem(
        (tier.severity, tier.comparison, tier.value, tier.clear_value) for tier in tiers
    )
    if problem:
        raise BacktestRefused("thresholds", problem)
    if not tiers:
        raise BacktestRefused("thresholds", "An edit needs at least one threshold.")
    return tuple(
        engine.Threshold(
            severity=engine.Severity(tier.severity),
            comparison=engine.Comparison(tier.comparison),
            value=tier.value,
            clear_value=tier.clear_value,
        )
        for tier in tiers
    )


def request_check(request: BacktestRequest, *, now: datetime | None = None) -> list[Source]:
    """The sources to replay; `BacktestRefused` naming the field for a request that
    cannot be answered (an unknown rule or source, a period outside retention...)."""
    now = now or timezone.now()
    rule = backtest_rule(request.rule_id)
    if request.start.tzinfo is None or request.end.tzinfo is None:
        raise BacktestRefused("from", "Times need a UTC offset.")
    if request.start >= request.end:
        raise BacktestRefused("from", "The period must start before it ends (`from` < `to`).")
    if request.end > now + timedelta(minutes=5):
        raise BacktestRefused("to", "The period cannot end in the future.")
    oldest = now - retention()
    if request.start < oldest - timedelta(minutes=5):
        days = retention().days
        raise BacktestRefused(
            "from", f"Samples are kept {days} days: the period must start after "
            f"{oldest.isoformat(timespec='seconds')}.",
        )  # fmt: skip
    if request.thresholds is not None:
        edited_thresholds(request.thresholds)
    if request.source_ids is None:
        sources = default_sources(rule)
        if not sources:
            raise BacktestRefused("sources", "No enabled source is in the rule's scope: name some.")
        return sources[:MAX_SOURCES]
    if not request.source_ids:
        raise BacktestRefused("sources", "Name at least one source (or leave it out).")
    if len(request.source_ids) > MAX_SOURCES:
        raise BacktestRefused("sources", f"At most {MAX_SOURCES} sources at once.")
    found = {
        source.pk: source
        for source in Source.objects.filter(pk__in=request.source_ids).prefetch_related("tags")
    }
    missing = [str(pk) for pk in request.source_ids if pk not in found]
    if missing:
        raise BacktestRefused("sources", f"No source with id {', '.join(missing)}.")
    return [found[pk] for pk in dict.fromkeys(request.source_ids)]


def routing_read() -> Routing:
    """The enabled policies, their channels and escalations, as live routing sees them."""
    policies = enabled_policies()
    escalations = []
    for policy in Policy.objects.filter(
        enabled=True, escalate_after__isnull=False
    ).prefetch_related("escalation_channels"):
        route = next((p for p in policies if p.id == policy.pk), None)
        channels = [c for c in policy.escalation_channels.all() if c.enabled]
        if route is None or policy.escalate_after is None or not channels:
            continue
        floors = channel_floors(c.pk for c in channels)
        escalations.append(
            Escalation(
                route,
                policy.escalate_after,
                tuple((c.pk, floors[c.pk][0], floors[c.pk][1]) for c in channels if c.pk in floors),
            )
        )
    channel_ids = {pk for policy in policies for pk in policy.channel_ids}
    return Routing(policies, channel_floors(channel_ids), escalations)


def backtest_run(
    request: BacktestRequest, *, progress: Progress | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Replay the request's rule and answer what it found (see `answer.replay_answer`)."""
    sources = request_check(request, now=now)
    rule = backtest_rule(request.rule_id)
    runs = [Run("current")]
    if request.thresholds is not None:
        runs.append(Run("edited", edited_thresholds(request.thresholds)))
    found = rule_replay(
        rule=rule, sources=sources, start=request.start, end=request.end, runs=runs,
        routing=routing_read(), progress=progress,
    )  # fmt: skip
    return replay_answer(found)
