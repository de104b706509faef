"""Reads of health: source scores, the safety view, and the system rollup.

Everything is read from what sources already sent (heartbeats, events, the latest
value of each series) and from the checks' rows, in a fixed number of queries however
many sources there are; the judging is done by the pure functions of `scoring`.

Signals a source may report, by name: `error_rate_pct` (errors per cycle, %), `cycles`
(the cycles it covers), `consecutive_errors`, `open_positions`, `exchange_latency_ms`;
decisions are trades and `decision` events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from metrics.models import Event, MetricSeries, Source, SourceHeartbeat, Trade

from .alerting import system_source_name
from .checks.activity import DECISION_EVENT
from .models import HealthCheck
from .scoring import Score, SourceSignals, Status, source_score, system_rollup, worst

ERROR_RATE: Final = "error_rate_pct"
CYCLES: Final = "cycles"
CONSECUTIVE_ERRORS: Final = "consecutive_errors"
OPEN_POSITIONS: Final = "open_positions"
EXCHANGE_LATENCY: Final = "exchange_latency_ms"
LATENCY_LIMIT_MS: Final = 5000.0
POSITIONS_DEGRADED_PCT: Final = 80.0
# (on, off) event pairs: the newer of the two says whether the state holds.
KILL_SWITCH: Final = ("kill_switch_activated", "kill_switch_released")
CIRCUIT_BREAKER: Final = ("circuit_breaker_tripped", "circuit_breaker_reset")
CONNECTIVITY: Final = ("connectivity_lost", "connectivity_restored")
_EVENT_TYPES: Final = (*KILL_SWITCH, *CIRCUIT_BREAKER, *CONNECTIVITY, DECISION_EVENT)


def watched_sources() -> list[Source]:
    """Enabled sources, without Tradewatch's own (its health is the checks')."""
    return list(Source.objects.filter(enabled=True).exclude(name=system_source_name()))


@dataclass
class SourceFacts:
    """What the database says of one source, loaded in bulk."""

    heartbeat: datetime | None = None
    newest_trade: datetime | None = None
    newest_event: dict[str, datetime] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)


def _newest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def source_facts(sources: Sequence[Source]) -> dict[int, SourceFacts]:
    """Heartbeats, newest trade and events, and latest signal values of `sources`."""
    ids = [source.pk for source in sources]
    facts = {source_id: SourceFacts() for source_id in ids}
    for source_id, last_seen in SourceHeartbeat.objects.filter(source_id__in=ids).values_list(
        "source_id", "last_seen"
    ):
        facts[source_id].heartbeat = last_seen
    # One index probe per source and type, not a scan of the trades or events tables.
    annotations: dict[str, Any] = {
        "newest_trade": Subquery(
            Trade.objects.filter(source=OuterRef("pk")).order_by("-ts").values("ts")[:1]
        )
    }
    for event_type in _EVENT_TYPES:
        annotations[f"event_{event_type}"] = Subquery(
            Event.objects.filter(source=OuterRef("pk"), type=event_type)
            .order_by("-ts")
            .values("ts")[:1]
        )
    for row in Source.objects.filter(pk__in=ids).annotate(**annotations).values("pk", *annotations):
        found = facts[row["pk"]]
        found.newest_trade = row["newest_trade"]
        found.newest_event = {
            event_type: row[f"event_{event_type}"]
            for event_type in _EVENT_TYPES
            if row[f"event_{event_type}"] is not None
        }
    names = (ERROR_RATE, CYCLES, CONSECUTIVE_ERRORS, OPEN_POSITIONS, EXCHANGE_LATENCY)
    sums: dict[tuple[int, str], float] = defaultdict(float)
    for source_id, name, value in MetricSeries.objects.filter(
        source_id__in=ids, name__in=names, last_value__isnull=False
    ).values_list("source_id", "name", "last_value"):
        if value is None:
            continue
        if name == OPEN_POSITIONS:
            sums[(source_id, name)] += value  # positions per symbol or exchange add up
        else:
            current = facts[source_id].latest.get(name)
            facts[source_id].latest[name] = value if current is None else max(current, value)
    for (source_id, name), total in sums.items():
        facts[source_id].latest[name] = total
    return facts


def signals_of(found: SourceFacts, now: datetime) -> SourceSignals:
    """The scoring inputs of one source."""
    decision = _newest(found.newest_trade, found.newest_event.get(DECISION_EVENT))
    cycles = found.latest.get(CYCLES)
    errors = found.latest.get(CONSECUTIVE_ERRORS)
    return SourceSignals(
        heartbeat_age=None if found.heartbeat is None else (now - found.heartbeat).total_seconds(),
        error_rate_pct=found.latest.get(ERROR_RATE),
        cycles=int(cycles) if cycles is not None else None,
        since_decision=None if decision is None else (now - decision).total_seconds(),
        consecutive_errors=int(errors) if errors is not None else None,
    )


@dataclass(frozen=True)
class SourceHealth:
    """One source's score, for the API, the command line and the admin."""

    source: Source
    score: Score

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.source.pk, "name": self.source.name, "kind": self.source.kind,
            "score": self.score.score, "status": self.score.status.label,
            "issues": self.score.issues, "warnings": self.score.warnings,
        }  # fmt: skip


def sources_health(*, now: datetime | None = None) -> list[SourceHealth]:
    """Every watched source's score, worst first."""
    now = now or timezone.now()
    sources = watched_sources()
    facts = source_facts(sources)
    scored = [
        SourceHealth(source, source_score(signals_of(facts[source.pk], now))) for source in sources
    ]
    return sorted(scored, key=lambda item: (item.score.score, item.source.name))


def _holds(found: SourceFacts, pair: tuple[str, str]) -> tuple[bool, datetime | None]:
    on, off = found.newest_event.get(pair[0]), found.newest_event.get(pair[1])
    return (on is not None and (off is None or off < on)), on


def safety_of(found: SourceFacts, max_positions: int) -> dict[str, Any]:
    """The safety view of one source: what holds, and the status it amounts to."""
    statuses = [Status.HEALTHY]
    issues: list[str] = []
    kill, kill_since = _holds(found, KILL_SWITCH)
    if kill:
        statuses.append(Status.CRITICAL)
        issues.append("kill switch active")
    tripped, tripped_since = _holds(found, CIRCUIT_BREAKER)
    if tripped:
        statuses.append(Status.UNHEALTHY)
        issues.append("circuit breaker tripped")
    positions = found.latest.get(OPEN_POSITIONS)
    utilisation = None
    if positions is not None and max_positions > 0:
        utilisation = round(positions / max_positions * 100, 1)
        if utilisation > 100:
            statuses.append(Status.UNHEALTHY)
            issues.append(f"{positions:g} open positions, over the limit of {max_positions}")
        elif utilisation > POSITIONS_DEGRADED_PCT:
            statuses.append(Status.DEGRADED)
            issues.append(f"positions at {utilisation:g} % of the limit of {max_positions}")
    lost, lost_since = _holds(found, CONNECTIVITY)
    connected = None
    if found.newest_event.get(CONNECTIVITY[0]) or found.newest_event.get(CONNECTIVITY[1]):
        connected = not lost
    if lost:
        statuses.append(Status.UNHEALTHY)
        issues.append("exchange connection lost")
    latency = found.latest.get(EXCHANGE_LATENCY)
    if latency is not None and latency > LATENCY_LIMIT_MS:
        statuses.append(Status.DEGRADED)
        issues.append(f"exchange latency {latency:.0f} ms (limit {LATENCY_LIMIT_MS:.0f} ms)")
    return {
        "status": worst(statuses).label,
        "issues": issues,
        "kill_switch": {"active": kill, "since": kill_since if kill else None},
        "circuit_breaker": {"tripped": tripped, "since": tripped_since if tripped else None},
        "positions": {"open": positions, "limit": max_positions, "utilisation_pct": utilisation},
        "exchange": {
            "connected": connected,
            "lost_since": lost_since if lost else None,
            "latency_ms": latency,
        },
    }


def safety_view(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """The safety view of every watched source."""
    sources = watched_sources()
    facts = source_facts(sources)
    limit = int(settings.TRADEWATCH_MAX_OPEN_POSITIONS)
    return [
        {"id": source.pk, "name": source.name, **safety_of(facts[source.pk], limit)}
        for source in sources
    ]


def check_row(check: HealthCheck) -> dict[str, Any]:
    """One check's state in plain values."""
    return {
        "id": check.pk, "name": check.name, "kind": check.kind,
        "source": check.source.name if check.source_id and check.source else None,
        "status": Status(check.status).label, "score": check.last_score,
        "latency_ms": check.last_latency_ms, "summary": check.last_summary,
        "breaker": check.breaker, "last_run_at": check.last_run_at,
    }  # fmt: skip


def system_status(*, now: datetime | None = None) -> dict[str, Any]:
    """The rollup across sources and checks, with each source's score and each check."""
    now = now or timezone.now()
    sources = sources_health(now=now)
    checks = list(HealthCheck.objects.filter(enabled=True).select_related("source"))
    statuses: Iterable[Status] = [
        *(item.score.status for item in sources),
        *(Status(check.status) for check in checks),
    ]
    return {
        "status": system_rollup(statuses).label,
        "generated_at": now,
        "sources": [item.as_dict() for item in sources],
        "checks": [check_row(check) for check in checks],
    }
