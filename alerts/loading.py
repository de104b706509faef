"""What rules look at, for a set of sources, read in a few queries.

The number of queries does not grow with the number of rules or sources: series,
windowed samples, window aggregates, events, heartbeats and open alerts are each read
once for the whole set. On PostgreSQL the small reads (`alerts.source_reads`) go as
plain SQL in one round trip; elsewhere through the ORM.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from metrics import signals
from metrics.models import MetricSample, MetricSeries, Source
from metrics.schedules import ScheduleBook

from . import engine, source_reads
from .lifecycle import KeptResolved
from .models import Alert, Rule
from .quiet import OpenAlert

WINDOWED_KINDS = {Rule.Kind.RATE_OF_CHANGE, Rule.Kind.ANOMALY}
HEARTBEAT = "heartbeat"
EVENT_PREFIX = "event:"
KILL_SWITCH_ON, KILL_SWITCH_OFF = "kill_switch_activated", "kill_switch_released"


def _plain_sql() -> bool:
    """Whether the small reads go as plain SQL (PostgreSQL), else through the ORM."""
    return connection.vendor == "postgresql"


@dataclass
class SourceData:
    """Everything the rules may look at for one source, loaded in bulk."""

    tag_ids: set[int] = field(default_factory=set)
    series: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[int, list[engine.Point]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[engine.Point]] = field(default_factory=lambda: defaultdict(list))
    newest_event: dict[str, datetime] = field(default_factory=dict)
    heartbeat: datetime | None = None
    # The newest heartbeat itself, and how long after it the next one is due.
    heartbeat_seen: datetime | None = None
    heartbeat_due_after: timedelta = timedelta(0)
    # "Alive but not trading": when each signal was last seen (decision, order, market
    # data); absent when the source never reported it.
    signal_newest: dict[str, datetime] = field(default_factory=dict)
    kill_switch_active: bool = False
    heartbeat_firing: bool = False
    open_alerts: dict[str, OpenAlert] = field(default_factory=dict)
    kept_resolved: dict[str, KeptResolved] = field(default_factory=dict)
    # (series id, aggregation, window) -> (value, samples), computed by the database
    aggregates: dict[tuple[int, str, timedelta], tuple[float | None, int]] = field(
        default_factory=dict
    )


@dataclass
class _FirstReads:
    """What every evaluation reads first; none of it depends on the rest."""

    sources: list[Source] | None
    tags: Iterable[tuple[int, int]]
    series: Iterable[dict[str, Any]]
    events: Iterable[tuple[int, str, datetime, bool]]
    heartbeats: Iterable[tuple[int, datetime]]
    open_alerts: Iterable[tuple[Any, ...]]


def signal_rules(rules: Iterable[Rule]) -> set[str]:
    """The signals ("alive but not trading") some of `rules` watch."""
    return {
        signal for rule in rules if (signal := signals.signal_of_metric(rule.metric)) is not None
    }


def reject_window(book: ScheduleBook | None, source_ids: Iterable[int]) -> timedelta:
    """The longest window any of `source_ids` measures its order reject rate over."""
    if book is None:
        return signals.DEFAULT_GRACE[signals.ORDER_REJECTS]
    return max(
        (book.expectation(source_id, signals.ORDER_REJECTS).grace for source_id in source_ids),
        default=signals.DEFAULT_GRACE[signals.ORDER_REJECTS],
    )


def _first_reads(
    ids: list[int],
    rules: list[Rule],
    now: datetime,
    *,
    with_sources: bool,
    book: ScheduleBook | None = None,
) -> _FirstReads:
    """Sources (if asked), tags, series, events, heartbeats and open alerts of `ids`: in
    one round trip on PostgreSQL, one ORM query each elsewhere."""
    watched_signals = signal_rules(rules)
    metric_names = {
        rule.metric
        for rule in rules
        if rule.kind != Rule.Kind.EVENT and not rule.metric.startswith(signals.RULE_PREFIX)
    } | {rule.guard_metric for rule in rules if rule.guard_metric}
    if signals.MARKET_DATA in watched_signals:
        metric_names.add(signals.MARKET_DATA_AGE_METRIC)
    event_rules = [rule for rule in rules if rule.kind == Rule.Kind.EVENT]
    newest_types = {KILL_SWITCH_ON, KILL_SWITCH_OFF} | {
        rule.metric.removeprefix(EVENT_PREFIX)
        for rule in rules
        if rule.kind == Rule.Kind.ABSENCE and rule.metric.startswith(EVENT_PREFIX)
    }
    windows = [rule.window for rule in event_rules]
    event_types = {rule.metric for rule in event_rules}
    for signal in watched_signals:
        if signal == signals.ORDER_REJECTS:
            windows.append(reject_window(book, ids))
            event_types |= set(signals.EVENT_TYPES[signal])
        else:
            newest_types |= set(signals.EVENT_TYPES[signal])
    event_since = now - max(windows) if windows else None
    trades = signals.ORDER in watched_signals
    if not _plain_sql():
        sources = None
        if with_sources:
            sources = list(Source.objects.filter(pk__in=ids, enabled=True).order_by("pk"))
        return _FirstReads(
            sources=sources,
            tags=source_reads.tag_rows(ids),
            series=source_reads.series_rows(ids, metric_names),
            events=source_reads.event_rows(
                ids, event_types, event_since, newest_types, trades=trades
            ),
            heartbeats=source_reads.heartbeat_rows(ids),
            open_alerts=source_reads.open_alert_rows(ids),
        )
    reads = [
        source_reads.tags_read(ids),
        source_reads.series_read(ids, metric_names),
        source_reads.events_read(ids, event_types, event_since, newest_types, trades=trades),
        source_reads.heartbeats_read(ids),
        source_reads.open_alerts_read(ids),
    ]
    if with_sources:
        reads.append(source_reads.sources_read(ids))
    tags, series, events, heartbeats, open_alerts, *sources_rows = source_reads.read_together(reads)
    return _FirstReads(
        sources=source_reads.sources_from(sources_rows[0]) if with_sources else None,
        tags=tags,
        series=source_reads.series_from(series),
        events=events,
        heartbeats=heartbeats,
        open_alerts=open_alerts,
    )


def source_data_load(
    sources: Sequence[Source],
    rules: list[Rule],
    now: datetime,
    *,
    book: ScheduleBook | None = None,
) -> dict[int, SourceData]:
    """What `rules` look at, for each of `sources`; `book`: the schedules and expectations
    (for the windows of order reject rates)."""
    ids = [source.pk for source in sources]
    first = _first_reads(ids, rules, now, with_sources=False, book=book)
    return _load(sources, first, rules, now)


def sources_with_data_load(
    source_ids: Sequence[int],
    rules: list[Rule],
    now: datetime,
    *,
    book: ScheduleBook | None = None,
) -> tuple[list[Source], dict[int, SourceData]]:
    """The enabled sources of `source_ids`, and what `rules` look at for each: the rows
    of the sources come in the same round trip as their data."""
    first = _first_reads(list(source_ids), rules, now, with_sources=True, book=book)
    sources = first.sources or []
    return sources, _load(sources, first, rules, now)


def _load(
    sources: Sequence[Source], first: _FirstReads, rules: list[Rule], now: datetime
) -> dict[int, SourceData]:
    ids = [source.pk for source in sources]
    # Only `sources` get data: rows of others read alongside (disabled ones) are skipped.
    data = {source.pk: SourceData() for source in sources}
    for source_id, tag_id in first.tags:
        if source_id in data:
            data[source_id].tag_ids.add(tag_id)
    by_id: dict[int, dict[str, Any]] = {}
    for series_row in first.series:
        plain: dict[str, Any] = dict(series_row)
        if plain["source_id"] in data:
            data[plain["source_id"]].series.append(plain)
            by_id[plain["id"]] = plain

    # Metrics these sources have series of: windows of the others need no query.
    present_names = {row["name"] for row in by_id.values()}

    # Window aggregates the database computes: one query per window, every aggregation
    # of that window in it (a scan of the window's samples is the cost, not the maths).
    if connection.vendor == "postgresql":
        wanted: dict[timedelta, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for rule in rules:
            if aggregated_in_sql(rule):
                wanted[rule.window][rule.aggregation].add(rule.metric)
        for window, names_by_aggregation in wanted.items():
            if present_names.isdisjoint(set().union(*names_by_aggregation.values())):
                continue  # none of these sources has such a series: nothing to scan
            for series_id, count, values in _window_aggregates(
                ids, names_by_aggregation, now - window
            ):
                row = by_id[series_id]
                for aggregation, value in values.items():
                    if row["name"] in names_by_aggregation[aggregation]:
                        data[row["source_id"]].aggregates[(series_id, aggregation, window)] = (
                            value,
                            count,
                        )

    # Points only for rules that look at their shape (rate, change, anomaly), or where
    # the database cannot aggregate (the embedded SQLite mode).
    windowed = [
        rule for rule in rules
        if rule.kind in WINDOWED_KINDS
        or (
            rule.kind == Rule.Kind.THRESHOLD
            and rule.aggregation != Rule.Aggregation.LAST
            and not (connection.vendor == "postgresql" and aggregated_in_sql(rule))
        )
    ]  # fmt: skip
    windowed = [rule for rule in windowed if rule.metric in present_names]
    if windowed:
        names = {rule.metric for rule in windowed}
        longest = max(rule.window for rule in windowed)
        # Rate of change looks at the value just before the window too.
        if any(rule.kind == Rule.Kind.RATE_OF_CHANGE for rule in windowed):
            longest += timedelta(minutes=5)
        since = now - longest
        # A join, not a list of thousands of series ids: the query stays the same size.
        # Samples up to 5 minutes ahead (a fast clock) count as now.
        for series_id, ts, value in MetricSample.objects.filter(
            series__source_id__in=ids, series__name__in=names, ts__gt=since
        ).values_list("series_id", "ts", "value"):
            data[by_id[series_id]["source_id"]].samples[series_id].append(
                engine.Point(min(ts, now), value)
            )

    for source_id, event_type, ts, newest in first.events:
        if source_id not in data:
            continue
        if newest:
            data[source_id].newest_event[event_type] = ts
        else:
            data[source_id].events[event_type].append(engine.Point(min(ts, now), 1.0))
    for source_data in data.values():
        on = source_data.newest_event.get(KILL_SWITCH_ON)
        off = source_data.newest_event.get(KILL_SWITCH_OFF)
        source_data.kill_switch_active = on is not None and (off is None or off < on)
    watched_signals = signal_rules(rules)
    if watched_signals:
        for source_data in data.values():
            _signals_newest(source_data, watched_signals, now)

    # A heartbeat is due `period + grace` after the last one: absence rules on
    # "heartbeat" measure from then, so their value is the seconds overdue.
    expected = {source.pk: source.heartbeat_period + source.heartbeat_grace for source in sources}
    for source_id, last_seen in first.heartbeats:
        if source_id in data:
            data[source_id].heartbeat = last_seen + expected[source_id]
            data[source_id].heartbeat_seen = last_seen
            data[source_id].heartbeat_due_after = expected[source_id]
    # Health alerts are opened and closed by the health runner, not judged here.
    for alert_row in first.open_alerts:
        fields: dict[str, Any] = dict(zip(source_reads.OPEN_ALERT_COLUMNS, alert_row, strict=False))
        through, kind, metric = alert_row[len(source_reads.OPEN_ALERT_COLUMNS) :]
        if fields["source_id"] not in data:
            continue
        source_data = data[fields.pop("source_id")]
        # (popped before the call: the subscript would be evaluated after it)
        fp = fields.pop("fingerprint")
        if fields["state"] == Alert.State.RESOLVED:
            source_data.kept_resolved[fp] = KeptResolved(
                id=fields["id"], severity=fields["severity"], through=through
            )
            continue
        source_data.open_alerts[fp] = OpenAlert(**fields)
        if kind == Rule.Kind.ABSENCE and metric == HEARTBEAT and fields["state"] == "firing":
            source_data.heartbeat_firing = True
    return data


def _signals_newest(data: SourceData, watched: set[str], now: datetime) -> None:
    """When each watched signal was last seen on one source (see `metrics.signals`)."""
    ticks = [
        signals.market_data_tick(row["last_ts"], row["last_value"])
        for row in data.series
        if row["name"] == signals.MARKET_DATA_AGE_METRIC
        and row["last_ts"] is not None
        and row["last_value"] is not None
    ]
    for signal in watched & set(signals.SILENCES):
        seen = signals.newest_seen(
            signal,
            events=data.newest_event,
            trade=data.newest_event.get(source_reads.NEWEST_TRADE),
            ticks=ticks,
        )
        if seen is not None:
            data.signal_newest[signal] = min(seen, now)


SQL_AGGREGATES = {
    Rule.Aggregation.AVG: "avg(value)",
    Rule.Aggregation.MIN: "min(value)",
    Rule.Aggregation.MAX: "max(value)",
    Rule.Aggregation.SUM: "sum(value)",
    Rule.Aggregation.COUNT: "count(*)",
    # Nearest rank, as the engine computes it.
    Rule.Aggregation.P95: "percentile_disc(0.95) WITHIN GROUP (ORDER BY value)",
    Rule.Aggregation.P99: "percentile_disc(0.99) WITHIN GROUP (ORDER BY value)",
}


def aggregated_in_sql(rule: Rule) -> bool:
    return rule.kind == Rule.Kind.THRESHOLD and rule.aggregation in SQL_AGGREGATES


def _window_aggregates(
    source_ids: Sequence[int], names_by_aggregation: dict[str, set[str]], since: datetime
) -> list[tuple[int, int, dict[str, float | None]]]:
    """(series id, samples, {aggregation: value}) of every matching series since `since`.

    Each aggregation is computed only over the series of the metrics it is wanted for
    (FILTER), so a percentile sorts only the windows that need one.
    """
    aggregations = sorted(names_by_aggregation)
    columns = []
    params: list[Any] = []
    for aggregation in aggregations:
        expression = SQL_AGGREGATES[Rule.Aggregation(aggregation)]
        # FILTER belongs to the aggregate call; the cast (count is an integer) after it.
        columns.append(f"({expression} FILTER (WHERE r.name = ANY(%s)))::float8")
        params.append(sorted(names_by_aggregation[aggregation]))
    every_name = sorted(set().union(*names_by_aggregation.values()))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.series_id, count(*), {', '.join(columns)} "
            f"FROM {MetricSample._meta.db_table} s "
            f"JOIN {MetricSeries._meta.db_table} r ON r.id = s.series_id "
            "WHERE r.source_id = ANY(%s) AND r.name = ANY(%s) AND s.ts > %s "
            "GROUP BY s.series_id",
            [*params, list(source_ids), every_name, since],
        )
        return [
            (int(row[0]), int(row[1]), dict(zip(aggregations, row[2:], strict=True)))
            for row in cursor.fetchall()
        ]
