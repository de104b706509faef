"""What rules look at, for a set of sources, read in a few queries.

The number of queries does not grow with the number of rules or sources: series,
windowed samples, window aggregates, events, heartbeats and open alerts are each read
once for the whole set. On PostgreSQL the small reads are plain SQL: they run for every
evaluation, often right in an ingestion request, and building their ORM queries cost
more than running them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Max, Q

from metrics.models import Event, MetricSample, MetricSeries, Source, SourceHeartbeat

from . import engine
from .lifecycle import KeptResolved
from .models import Alert, Rule
from .quiet import OpenAlert

WINDOWED_KINDS = {Rule.Kind.RATE_OF_CHANGE, Rule.Kind.ANOMALY}
HEARTBEAT = "heartbeat"
EVENT_PREFIX = "event:"
KILL_SWITCH_ON, KILL_SWITCH_OFF = "kill_switch_activated", "kill_switch_released"

# The open alert columns evaluation preloads (OpenAlert's, and what to file them under).
OPEN_ALERT_COLUMNS = (
    "id", "source_id", "fingerprint", "severity", "state", "first_seen", "last_notified_at",
    "inhibited", "acknowledged_at", "acknowledged_until", "threshold_value", "comparison",
    "peak_value", "rule_id", "announced_at", "condition_cleared_at",
)  # fmt: skip
OPEN_STATES = [Alert.State.PENDING, Alert.State.FIRING]


def _plain_sql() -> bool:
    """Whether the small reads go as plain SQL (PostgreSQL), else through the ORM."""
    return connection.vendor == "postgresql"


Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Read:
    """One plain-SQL read, sent with others in one round trip (`read_together`)."""

    sql: str
    params: list[Any]


def read_together(reads: Sequence[Read]) -> list[Rows]:
    """The rows of each of `reads`, all sent in one round trip.

    Django's PostgreSQL cursors bind parameters on the client, so several statements go
    as one query and come back as one result set each. An evaluation on arrival makes
    half a dozen small reads inside the ingestion request: one round trip instead of six
    is most of their cost. (Server-side binding, an opt-in database option, takes one
    statement at a time.)
    """
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        return [_rows(read.sql, read.params) for read in reads]
    with connection.cursor() as cursor:
        cursor.execute(
            "; ".join(read.sql for read in reads),
            [param for read in reads for param in read.params],
        )
        # The first of them: an execute wrapper may have moved on (django-pghistory's
        # context steps to the last result set, past statements it put in front).
        cursor.set_result(-len(reads))
        results: list[Rows] = [cursor.fetchall()]
        while cursor.nextset():
            results.append(cursor.fetchall())
    return results


def _rows(sql: str, params: Sequence[Any]) -> Rows:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: Rows = cursor.fetchall()
        return rows


def _sources_read(ids: list[int]) -> Read:
    columns = ", ".join(str(field.column) for field in Source._meta.concrete_fields)
    return Read(
        f"SELECT {columns} FROM {Source._meta.db_table} WHERE id = ANY(%s) AND enabled ORDER BY id",
        [ids],
    )


def _sources_from(rows: Rows) -> list[Source]:
    names = [field.attname for field in Source._meta.concrete_fields]
    return [Source.from_db(connection.alias, names, row) for row in rows]


def _tags_read(ids: list[int]) -> Read:
    through = Source.tags.through
    source = through._meta.get_field("source").column
    tag = through._meta.get_field("tag").column
    return Read(
        f"SELECT {source}, {tag} FROM {through._meta.db_table} WHERE {source} = ANY(%s)", [ids]
    )


def _tag_rows(ids: list[int]) -> Iterable[tuple[int, int]]:
    """What `_tags_read` reads, through the ORM."""
    return Source.tags.through.objects.filter(source_id__in=ids).values_list("source_id", "tag_id")


SERIES_COLUMNS = ("id", "source_id", "name", "labels", "labels_key", "last_ts", "last_value")


def _series_read(ids: list[int], names: set[str]) -> Read:
    return Read(
        f"SELECT {', '.join(SERIES_COLUMNS)} FROM {MetricSeries._meta.db_table} "
        "WHERE source_id = ANY(%s) AND name = ANY(%s)",
        [ids, sorted(names)],
    )


def _series_from(rows: Rows) -> list[dict[str, Any]]:
    series = []
    for row in rows:
        plain = dict(zip(SERIES_COLUMNS, row, strict=True))
        if isinstance(plain["labels"], str):  # jsonb arrives as text: JSONField decodes it
            plain["labels"] = json.loads(plain["labels"])
        series.append(plain)
    return series


def _series_rows(ids: list[int], names: set[str]) -> Iterable[dict[str, Any]]:
    """What `_series_read` reads, through the ORM."""
    series: Iterable[dict[str, Any]] = MetricSeries.objects.filter(
        source_id__in=ids, name__in=names
    ).values(*SERIES_COLUMNS)
    return series


def _heartbeats_read(ids: list[int]) -> Read:
    return Read(
        f"SELECT source_id, last_seen FROM {SourceHeartbeat._meta.db_table} "
        "WHERE source_id = ANY(%s)",
        [ids],
    )


def _heartbeat_rows(ids: list[int]) -> Iterable[tuple[int, datetime]]:
    """What `_heartbeats_read` reads, through the ORM."""
    return SourceHeartbeat.objects.filter(source_id__in=ids).values_list("source_id", "last_seen")


def _open_alerts_read(ids: list[int]) -> Read:
    """OPEN_ALERT_COLUMNS, then `keep_resolved_through` and the rule's kind and metric, of
    the open alerts of `ids` and those kept resolved by a person, other than health
    alerts."""
    columns = ", ".join(f"a.{column}" for column in OPEN_ALERT_COLUMNS)
    return Read(
        f"SELECT {columns}, a.keep_resolved_through, r.kind, r.metric "
        f"FROM {Alert._meta.db_table} a JOIN {Rule._meta.db_table} r ON r.id = a.rule_id "
        "WHERE a.source_id = ANY(%s) AND (a.state = ANY(%s) OR a.keep_resolved) "
        "AND r.kind <> %s",
        [ids, [str(state) for state in OPEN_STATES], str(Rule.Kind.HEALTH)],
    )


def _open_alert_rows(ids: list[int]) -> Iterable[tuple[Any, ...]]:
    """What `_open_alerts_read` reads, through the ORM."""
    return (
        Alert.objects.filter(Q(state__in=OPEN_STATES) | Q(keep_resolved=True), source_id__in=ids)
        .exclude(rule__kind=Rule.Kind.HEALTH)
        .values_list(*OPEN_ALERT_COLUMNS, "keep_resolved_through", "rule__kind", "rule__metric")
    )


@dataclass
class SourceData:
    """Everything the rules may look at for one source, loaded in bulk."""

    tag_ids: set[int] = field(default_factory=set)
    series: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[int, list[engine.Point]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[engine.Point]] = field(default_factory=lambda: defaultdict(list))
    newest_event: dict[str, datetime] = field(default_factory=dict)
    heartbeat: datetime | None = None
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


def _first_reads(
    ids: list[int], rules: list[Rule], now: datetime, *, with_sources: bool
) -> _FirstReads:
    """Sources (if asked), tags, series, events, heartbeats and open alerts of `ids`: in
    one round trip on PostgreSQL, one ORM query each elsewhere."""
    metric_names = {rule.metric for rule in rules if rule.kind != Rule.Kind.EVENT} | {
        rule.guard_metric for rule in rules if rule.guard_metric
    }
    event_rules = [rule for rule in rules if rule.kind == Rule.Kind.EVENT]
    newest_types = {KILL_SWITCH_ON, KILL_SWITCH_OFF} | {
        rule.metric.removeprefix(EVENT_PREFIX)
        for rule in rules
        if rule.kind == Rule.Kind.ABSENCE and rule.metric.startswith(EVENT_PREFIX)
    }
    event_since = now - max(rule.window for rule in event_rules) if event_rules else None
    event_types = {rule.metric for rule in event_rules}
    if not _plain_sql():
        sources = None
        if with_sources:
            sources = list(Source.objects.filter(pk__in=ids, enabled=True).order_by("pk"))
        return _FirstReads(
            sources=sources,
            tags=_tag_rows(ids),
            series=_series_rows(ids, metric_names),
            events=_event_rows(ids, event_types, event_since, newest_types),
            heartbeats=_heartbeat_rows(ids),
            open_alerts=_open_alert_rows(ids),
        )
    reads = [
        _tags_read(ids),
        _series_read(ids, metric_names),
        _events_read(ids, event_types, event_since, newest_types),
        _heartbeats_read(ids),
        _open_alerts_read(ids),
    ]
    if with_sources:
        reads.append(_sources_read(ids))
    tags, series, events, heartbeats, open_alerts, *sources_rows = read_together(reads)
    return _FirstReads(
        sources=_sources_from(sources_rows[0]) if with_sources else None,
        tags=tags,
        series=_series_from(series),
        events=events,
        heartbeats=heartbeats,
        open_alerts=open_alerts,
    )


def source_data_load(
    sources: Sequence[Source], rules: list[Rule], now: datetime
) -> dict[int, SourceData]:
    """What `rules` look at, for each of `sources`."""
    ids = [source.pk for source in sources]
    return _load(sources, _first_reads(ids, rules, now, with_sources=False), rules, now)


def sources_with_data_load(
    source_ids: Sequence[int], rules: list[Rule], now: datetime
) -> tuple[list[Source], dict[int, SourceData]]:
    """The enabled sources of `source_ids`, and what `rules` look at for each: the rows
    of the sources come in the same round trip as their data."""
    first = _first_reads(list(source_ids), rules, now, with_sources=True)
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

    # A heartbeat is due `period + grace` after the last one: absence rules on
    # "heartbeat" measure from then, so their value is the seconds overdue.
    expected = {source.pk: source.heartbeat_period + source.heartbeat_grace for source in sources}
    for source_id, last_seen in first.heartbeats:
        if source_id in data:
            data[source_id].heartbeat = last_seen + expected[source_id]
    # Health alerts are opened and closed by the health runner, not judged here.
    for alert_row in first.open_alerts:
        fields: dict[str, Any] = dict(zip(OPEN_ALERT_COLUMNS, alert_row, strict=False))
        through, kind, metric = alert_row[len(OPEN_ALERT_COLUMNS) :]
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


def _events_read(
    source_ids: list[int], types: set[str], since: datetime | None, newest_types: set[str]
) -> Read:
    """(source, type, ts, False) of each event of `types` since `since`, and (source, type,
    newest ts, True) of each of `newest_types`."""
    table = Event._meta.db_table
    parts: list[str] = []
    params: list[Any] = []
    if since is not None and types:
        parts.append(
            f"SELECT source_id, type, ts, false FROM {table} "
            "WHERE source_id = ANY(%s) AND type = ANY(%s) AND ts > %s"
        )
        params += [source_ids, sorted(types), since]
    # Never empty: the kill switch's types are always among them.
    parts.append(
        f"SELECT source_id, type, max(ts), true FROM {table} "
        "WHERE source_id = ANY(%s) AND type = ANY(%s) GROUP BY source_id, type"
    )
    params += [source_ids, sorted(newest_types)]
    return Read(" UNION ALL ".join(parts), params)


def _event_rows(
    source_ids: list[int], types: set[str], since: datetime | None, newest_types: set[str]
) -> Iterable[tuple[int, str, datetime, bool]]:
    """What `_events_read` reads, through the ORM."""
    rows: list[tuple[int, str, datetime, bool]] = []
    if since is not None and types:
        rows += [
            (source_id, kind, ts, False)
            for source_id, kind, ts in Event.objects.filter(
                source_id__in=source_ids, type__in=types, ts__gt=since
            ).values_list("source_id", "type", "ts")
        ]
    rows += [
        (source_id, kind, newest, True)
        for source_id, kind, newest in Event.objects.filter(
            source_id__in=source_ids, type__in=newest_types
        )
        .values("source_id", "type")
        .annotate(newest=Max("ts"))
        .values_list("source_id", "type", "newest")
    ]
    return rows


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
