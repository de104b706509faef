"""Reads of health: source scores, the safety view, and the system rollup.

Everything is read from what sources already sent (heartbeats, events, the latest
value of each series) and from the checks' rows, in a fixed number of queries however
many sources there are; the judging is done by the pure functions of `scoring`.

Signals a source may report, by name: `error_rate_pct` (errors per cycle, %), `cycles`
(the cycles it covers), `consecutive_errors`, `open_positions`, `exchange_latency_ms`;
decisions are trades and `decision` events. A source's open alerts are read for all
sources in one query, worst first, at most `LISTED_ALERTS` each with the count of the
rest; Tradewatch's watchdog is never among them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, F, OuterRef, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from alerts.models import Alert
from alerts.selectors import without_watchdog
from metrics import signals as trading_signals
from metrics.control import states_of
from metrics.models import Event, MetricSeries, Source, SourceHeartbeat, Trade
from metrics.schedules import ScheduleBook, schedule_book, when_text
from metrics.services import SYSTEM_SOURCE_NAME
from metrics.timetables import Timetable, clock_start

from .checks.activity import DECISION_EVENT
from .models import HealthCheck
from .scoring import (
    OpenAlert,
    Score,
    ScoreLimits,
    SignalState,
    SourceSignals,
    Status,
    own_score,
    position_utilisation,
    safety_status,
    source_score,
    system_rollup,
)

ERROR_RATE: Final = "error_rate_pct"
CYCLES: Final = "cycles"
CONSECUTIVE_ERRORS: Final = "consecutive_errors"
OPEN_POSITIONS: Final = "open_positions"
EXCHANGE_LATENCY: Final = "exchange_latency_ms"
# (on, off) event pairs: the newer of the two says whether the state holds.
KILL_SWITCH: Final = ("kill_switch_activated", "kill_switch_released")
CIRCUIT_BREAKER: Final = ("circuit_breaker_tripped", "circuit_breaker_reset")
CONNECTIVITY: Final = ("connectivity_lost", "connectivity_restored")
_EVENT_TYPES: Final = (
    *KILL_SWITCH, *CIRCUIT_BREAKER, *CONNECTIVITY, DECISION_EVENT,
    trading_signals.ORDER_SUBMITTED_EVENT, trading_signals.MARKET_DATA_EVENT,
    trading_signals.ORDER_REJECTED_EVENT,
)  # fmt: skip
# Open alerts named per source (worst first); the rest are counted.
LISTED_ALERTS: Final = 5
OPEN_STATES: Final = (Alert.State.PENDING, Alert.State.FIRING)


def watched_sources() -> list[Source]:
    """Enabled sources, without Tradewatch's own (its health is the checks')."""
    return list(Source.objects.filter(enabled=True).exclude(name=SYSTEM_SOURCE_NAME))


def score_limits() -> ScoreLimits:
    """The scoring's limits, with the configured open positions limit."""
    return ScoreLimits(max_open_positions=int(settings.TRADEWATCH_MAX_OPEN_POSITIONS))


@dataclass
class SourceFacts:
    """What the database says of one source, loaded in bulk."""

    heartbeat: datetime | None = None
    newest_trade: datetime | None = None
    newest_event: dict[str, datetime] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)
    alerts: list[OpenAlert] = field(default_factory=list)  # worst first, at most LISTED_ALERTS
    open_alerts: int = 0  # all of them, the watchdog left out
    # Where its heartbeat clock starts (the newest heartbeat, or its schedule's opening
    # when later), and "market closed, opens ..." while its schedule is closed.
    heartbeat_clock: datetime | None = None
    closed_note: str | None = None
    market_closed: bool = False
    # The newest market-data tick a `market_data_age_ms` sample speaks of.
    market_data_tick: datetime | None = None
    expectations: list[SignalState] = field(default_factory=list)


def _newest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def source_facts(
    sources: Sequence[Source], *, now: datetime | None = None
) -> dict[int, SourceFacts]:
    """Heartbeats, newest trade and events, latest signal values, schedules and
    expectations of `sources` at `now`."""
    now = now or timezone.now()
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
    for source_id, name, value, last_ts in MetricSeries.objects.filter(
        source_id__in=ids,
        name__in=(*names, trading_signals.MARKET_DATA_AGE_METRIC),
        last_value__isnull=False,
    ).values_list("source_id", "name", "last_value", "last_ts"):
        if value is None:
            continue
        if name == trading_signals.MARKET_DATA_AGE_METRIC:
            if last_ts is not None:
                tick = trading_signals.market_data_tick(last_ts, value)
                found = facts[source_id]
                found.market_data_tick = _newest(found.market_data_tick, tick)
            continue
        if name == OPEN_POSITIONS:
            sums[(source_id, name)] += value  # positions per symbol or exchange add up
        else:
            current = facts[source_id].latest.get(name)
            facts[source_id].latest[name] = value if current is None else max(current, value)
    for (source_id, name), total in sums.items():
        facts[source_id].latest[name] = total
    names_of = {source.pk: source.name for source in sources}
    for source_id, alerts, count in open_alerts_of(ids, names_of):
        facts[source_id].alerts = alerts
        facts[source_id].open_alerts = count
    _schedules_and_expectations(sources, facts, now, schedule_book())
    return facts


def _opened(table: Timetable, now: datetime) -> tuple[bool, datetime | None]:
    segment = table.segment(now)
    return segment.open, segment.since if segment.open else None


def _schedules_and_expectations(
    sources: Sequence[Source], facts: dict[int, SourceFacts], now: datetime, book: ScheduleBook
) -> None:
    """Each source's schedule (heartbeat clock, "market closed") and its expectations
    of decisions, orders, market data and order rejects (`metrics.signals`)."""
    reject_windows: dict[datetime, list[int]] = defaultdict(list)
    for source in sources:
        found = facts[source.pk]
        table = book.timetable(source.schedule_id)
        is_open, opened = _opened(table, now)
        found.heartbeat_clock = clock_start(found.heartbeat, opened)
        if not is_open:
            found.market_closed = True
            found.closed_note = (
                f"market closed, {book.names.get(source.schedule_id or 0, table.describe())} "
                f"opens {when_text(table.next_open(now), now, short=True)}"
            )
        ticks = [found.market_data_tick] if found.market_data_tick is not None else []
        newest = {
            signal: trading_signals.newest_seen(
                signal, events=found.newest_event, trade=found.newest_trade, ticks=ticks
            )
            for signal in trading_signals.SILENCES
        }
        # The score's decisions are trades too (a bot that trades has decided).
        newest[trading_signals.DECISION] = _newest(
            found.newest_trade, newest[trading_signals.DECISION]
        )
        for signal in trading_signals.SIGNALS:
            spec = book.expectation(source.pk, signal)
            if not spec.enabled:
                continue
            signal_table = book.expectation_timetable(source, signal)
            signal_open, signal_opened = _opened(signal_table, now)
            state = SignalState(
                signal=signal,
                grace=spec.grace.total_seconds(),
                open=signal_open,
                scheduled=not signal_table.always_open,
            )
            if signal == trading_signals.ORDER_REJECTS:
                start = now - spec.grace
                if signal_opened is not None:
                    start = max(start, signal_opened)
                # Counted only where a reject falls in the window: none is 0 %.
                newest_reject = found.newest_event.get(trading_signals.ORDER_REJECTED_EVENT)
                if newest_reject is not None and newest_reject > start:
                    reject_windows[start].append(source.pk)
            else:
                since = clock_start(newest[signal], signal_opened)
                silent = None if since is None else max(0.0, (now - since).total_seconds())
                state = replace(state, silent_for=silent)
            found.expectations.append(state)
    counted = (trading_signals.ORDER_SUBMITTED_EVENT, trading_signals.ORDER_REJECTED_EVENT)
    for start, source_ids in reject_windows.items():
        counts: dict[tuple[int, str], int] = {
            (source_id, event_type): n
            for source_id, event_type, n in Event.objects.filter(
                source_id__in=source_ids, type__in=counted, ts__gt=start, ts__lte=now
            )
            .values_list("source_id", "type")
            .annotate(n=Count("id"))
            .values_list("source_id", "type", "n")
        }
        for source_id in source_ids:
            rejected = counts.get((source_id, trading_signals.ORDER_REJECTED_EVENT), 0)
            submitted = counts.get((source_id, trading_signals.ORDER_SUBMITTED_EVENT), 0)
            _, orders = trading_signals.reject_rate(rejected, submitted)
            found = facts[source_id]
            found.expectations = [
                replace(state, rejected=rejected, orders=orders)
                if state.signal == trading_signals.ORDER_REJECTS
                else state
                for state in found.expectations
            ]


def open_alerts_of(
    ids: Sequence[int], names: dict[int, str]
) -> Iterable[tuple[int, list[OpenAlert], int]]:
    """(source id, its worst open alerts, how many are open) for `ids`, in one query.

    Worst first: firing before pending, then the most severe, the newest; the watchdog
    left out. A message starting with its source's name ("eth-maker: drawdown ...") is
    shown without it.
    """
    by = f"acknowledged_by__{get_user_model().USERNAME_FIELD}"
    source = F("source_id")
    worst_first = [F("state").asc(), F("severity").desc(), F("last_seen").desc(), F("id").desc()]
    fields = ("source_id", "place", "of_source", "severity", "state", "rule__name", "message",
              "acknowledged_at", by, "inhibited")  # fmt: skip
    rows = (
        without_watchdog(Alert.objects.filter(source_id__in=ids, state__in=OPEN_STATES))
        .annotate(
            # "firing" sorts before "pending".
            place=Window(RowNumber(), partition_by=[source], order_by=worst_first),
            of_source=Window(Count("id"), partition_by=[source]),
        )
        .filter(place__lte=LISTED_ALERTS)
        .order_by()
        .values(*fields)
    )
    found: dict[int, tuple[list[OpenAlert], int]] = {}
    for row in sorted(rows, key=lambda row: (row["source_id"], row["place"])):
        alerts, _ = found.setdefault(row["source_id"], ([], row["of_source"]))
        prefix = f"{names.get(row['source_id'], '')}: "
        message = row["message"] or ""
        alerts.append(
            OpenAlert(
                severity=row["severity"],
                rule=row["rule__name"],
                message=message.removeprefix(prefix) if len(prefix) > 2 else message,
                firing=row["state"] == Alert.State.FIRING,
                acknowledged=row["acknowledged_at"] is not None,
                acknowledged_by=row[by],
                inhibited=row["inhibited"],
            )
        )
    return ((source_id, alerts, count) for source_id, (alerts, count) in found.items())


def _holds(found: SourceFacts, pair: tuple[str, str]) -> datetime | None:
    """Since when the state of an (on, off) event pair holds (None: it does not)."""
    on, off = found.newest_event.get(pair[0]), found.newest_event.get(pair[1])
    return on if on is not None and (off is None or off < on) else None


def _local(moment: datetime | None) -> datetime | None:
    return None if moment is None else timezone.localtime(moment)


def signals_of(found: SourceFacts, now: datetime) -> SourceSignals:
    """The scoring inputs of one source."""
    decision = _newest(found.newest_trade, found.newest_event.get(DECISION_EVENT))
    decision_state = next((s for s in found.expectations if s.signal == "decision"), None)
    since_decision = None if decision is None else (now - decision).total_seconds()
    if decision_state is not None and decision_state.silent_for is not None:
        since_decision = decision_state.silent_for  # counted from its session's opening
    cycles = found.latest.get(CYCLES)
    errors = found.latest.get(CONSECUTIVE_ERRORS)
    beat = found.heartbeat_clock or found.heartbeat
    return SourceSignals(
        heartbeat_age=None if beat is None else (now - beat).total_seconds(),
        error_rate_pct=found.latest.get(ERROR_RATE),
        cycles=int(cycles) if cycles is not None else None,
        since_decision=since_decision,
        consecutive_errors=int(errors) if errors is not None else None,
        read_at=timezone.localtime(now),
        kill_switch_since=_local(_holds(found, KILL_SWITCH)),
        breaker_tripped_since=_local(_holds(found, CIRCUIT_BREAKER)),
        connection_lost_since=_local(_holds(found, CONNECTIVITY)),
        open_positions=found.latest.get(OPEN_POSITIONS),
        exchange_latency_ms=found.latest.get(EXCHANGE_LATENCY),
        alerts=tuple(found.alerts),
        more_alerts=max(found.open_alerts - len(found.alerts), 0),
        closed_note=found.closed_note,
        expectations=tuple(found.expectations),
    )


def score_of(
    source: Source, found: SourceFacts, now: datetime, limits: ScoreLimits | None = None
) -> Score:
    """One source's score; Tradewatch's own source is judged by its alerts alone."""
    if source.name == SYSTEM_SOURCE_NAME:
        return own_score(found.alerts, max(found.open_alerts - len(found.alerts), 0))
    return source_score(signals_of(found, now), limits or score_limits())


@dataclass(frozen=True)
class SourceHealth:
    """One source's score, for the API, the command line and the admin."""

    source: Source
    score: Score
    facts: SourceFacts = field(default_factory=SourceFacts, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.source.pk, "name": self.source.name, "kind": self.source.kind,
            "score": self.score.score, "status": self.score.status.label,
            "issues": self.score.issues, "warnings": self.score.warnings,
            "notes": self.score.notes, "market_closed": self.facts.market_closed,
        }  # fmt: skip


@dataclass(frozen=True)
class HealthReading:
    """Every watched source's health, worst first, and Tradewatch's own (None: not made yet)."""

    sources: list[SourceHealth]
    own: SourceHealth | None

    @property
    def statuses(self) -> list[Status]:
        """What the system rollup takes from sources: theirs, and Tradewatch's own problems.

        Tradewatch's own source adds a status only when an alert holds it below HEALTHY:
        no alert firing on it is no evidence it works (that is the dead man's switch's
        job), so a system that knows nothing else stays UNKNOWN.
        """
        own = self.own.score.status if self.own is not None else Status.HEALTHY
        extra = [own] if own is not Status.HEALTHY else []
        return [*(item.score.status for item in self.sources), *extra]


def health_read(*, now: datetime | None = None) -> HealthReading:
    """Score every enabled source, Tradewatch's own apart, in a fixed number of queries."""
    now = now or timezone.now()
    enabled = list(Source.objects.filter(enabled=True))
    facts = source_facts(enabled, now=now)
    limits = score_limits()
    own = None
    scored = []
    for source in enabled:
        found = facts[source.pk]
        item = SourceHealth(source, score_of(source, found, now, limits), found)
        if source.name == SYSTEM_SOURCE_NAME:
            own = item
        else:
            scored.append(item)
    scored.sort(key=lambda item: (item.score.score, item.source.name))
    return HealthReading(scored, own)


def sources_health(*, now: datetime | None = None) -> list[SourceHealth]:
    """Every watched source's score, worst first."""
    return health_read(now=now).sources


def safety_of(found: SourceFacts, limits: ScoreLimits, now: datetime) -> dict[str, Any]:
    """The safety view of one source: what holds, and the status it amounts to."""
    verdict = safety_status(signals_of(found, now), limits)
    kill_since = _holds(found, KILL_SWITCH)
    tripped_since = _holds(found, CIRCUIT_BREAKER)
    lost_since = _holds(found, CONNECTIVITY)
    connected = None
    if found.newest_event.get(CONNECTIVITY[0]) or found.newest_event.get(CONNECTIVITY[1]):
        connected = lost_since is None
    positions = found.latest.get(OPEN_POSITIONS)
    limit = limits.max_open_positions
    return {
        "status": verdict.status.label,
        "issues": verdict.issues,
        "kill_switch": {"active": kill_since is not None, "since": kill_since},
        "circuit_breaker": {"tripped": tripped_since is not None, "since": tripped_since},
        "positions": {
            "open": positions,
            "limit": limit,
            "utilisation_pct": position_utilisation(positions, limit),
        },
        "exchange": {
            "connected": connected,
            "lost_since": lost_since,
            "latency_ms": found.latest.get(EXCHANGE_LATENCY),
        },
    }


def safety_view(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """The safety view of every watched source."""
    now = now or timezone.now()
    sources = watched_sources()
    facts = source_facts(sources, now=now)
    limits = score_limits()
    trading = states_of([source.pk for source in sources], now)
    return [
        {
            "id": source.pk,
            "name": source.name,
            **safety_of(facts[source.pk], limits, now),
            "trading": trading[source.pk].as_dict(),
        }
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
    """The rollup across sources, Tradewatch itself and checks, with each one's status."""
    now = now or timezone.now()
    reading = health_read(now=now)
    checks = list(HealthCheck.objects.filter(enabled=True).select_related("source"))
    statuses: Iterable[Status] = [
        *reading.statuses,
        *(Status(check.status) for check in checks),
    ]
    return {
        "status": system_rollup(statuses).label,
        "generated_at": now,
        "sources": [item.as_dict() for item in reading.sources],
        "tradewatch": reading.own.as_dict() if reading.own is not None else None,
        "checks": [check_row(check) for check in checks],
    }
