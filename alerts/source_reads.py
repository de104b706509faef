"""The small reads of an evaluation, each as plain SQL (`*_read`, sent together by
`read_together`) and as its ORM twin (`*_rows`, for SQLite).

They run for every evaluation, often right in an ingestion request: on PostgreSQL they
go as one round trip, and building ORM queries for them would cost more than running
them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Max, Q

from metrics.models import Event, MetricSeries, Source, SourceHeartbeat, Trade

from .models import Alert, Rule

# The open alert columns evaluation preloads (OpenAlert's, and what to file them under).
OPEN_ALERT_COLUMNS = (
    "id", "source_id", "fingerprint", "severity", "state", "first_seen", "last_notified_at",
    "inhibited", "acknowledged_at", "acknowledged_until", "threshold_value", "comparison",
    "peak_value", "rule_id", "announced_at", "condition_cleared_at", "last_seen",
)  # fmt: skip
OPEN_STATES = [Alert.State.PENDING, Alert.State.FIRING]


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


def sources_read(ids: list[int]) -> Read:
    columns = ", ".join(str(field.column) for field in Source._meta.concrete_fields)
    return Read(
        f"SELECT {columns} FROM {Source._meta.db_table} WHERE id = ANY(%s) AND enabled ORDER BY id",
        [ids],
    )


def sources_from(rows: Rows) -> list[Source]:
    names = [field.attname for field in Source._meta.concrete_fields]
    return [Source.from_db(connection.alias, names, row) for row in rows]


def tags_read(ids: list[int]) -> Read:
    through = Source.tags.through
    source = through._meta.get_field("source").column
    tag = through._meta.get_field("tag").column
    return Read(
        f"SELECT {source}, {tag} FROM {through._meta.db_table} WHERE {source} = ANY(%s)", [ids]
    )


def tag_rows(ids: list[int]) -> Iterable[tuple[int, int]]:
    """What `tags_read` reads, through the ORM."""
    return Source.tags.through.objects.filter(source_id__in=ids).values_list("source_id", "tag_id")


SERIES_COLUMNS = ("id", "source_id", "name", "labels", "labels_key", "last_ts", "last_value")


def series_read(ids: list[int], names: set[str]) -> Read:
    return Read(
        f"SELECT {', '.join(SERIES_COLUMNS)} FROM {MetricSeries._meta.db_table} "
        "WHERE source_id = ANY(%s) AND name = ANY(%s)",
        [ids, sorted(names)],
    )


def series_from(rows: Rows) -> list[dict[str, Any]]:
    series = []
    for row in rows:
        plain = dict(zip(SERIES_COLUMNS, row, strict=True))
        if isinstance(plain["labels"], str):  # jsonb arrives as text: JSONField decodes it
            plain["labels"] = json.loads(plain["labels"])
        series.append(plain)
    return series


def series_rows(ids: list[int], names: set[str]) -> Iterable[dict[str, Any]]:
    """What `series_read` reads, through the ORM."""
    series: Iterable[dict[str, Any]] = MetricSeries.objects.filter(
        source_id__in=ids, name__in=names
    ).values(*SERIES_COLUMNS)
    return series


def heartbeats_read(ids: list[int]) -> Read:
    return Read(
        f"SELECT source_id, last_seen FROM {SourceHeartbeat._meta.db_table} "
        "WHERE source_id = ANY(%s)",
        [ids],
    )


def heartbeat_rows(ids: list[int]) -> Iterable[tuple[int, datetime]]:
    """What `heartbeats_read` reads, through the ORM."""
    return SourceHeartbeat.objects.filter(source_id__in=ids).values_list("source_id", "last_seen")


def open_alerts_read(ids: list[int]) -> Read:
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


def open_alert_rows(ids: list[int]) -> Iterable[tuple[Any, ...]]:
    """What `open_alerts_read` reads, through the ORM."""
    return (
        Alert.objects.filter(Q(state__in=OPEN_STATES) | Q(keep_resolved=True), source_id__in=ids)
        .exclude(rule__kind=Rule.Kind.HEALTH)
        .values_list(*OPEN_ALERT_COLUMNS, "keep_resolved_through", "rule__kind", "rule__metric")
    )


# What the newest trade is filed under among the newest events.
NEWEST_TRADE = "(trade)"


def events_read(
    source_ids: list[int],
    types: set[str],
    since: datetime | None,
    newest_types: set[str],
    *,
    trades: bool = False,
) -> Read:
    """(source, type, ts, False) of each event of `types` since `since`, and (source, type,
    newest ts, True) of each of `newest_types` (and, with `trades`, of the newest trade,
    typed NEWEST_TRADE)."""
    table = Event._meta.db_table
    parts: list[str] = []
    params: list[Any] = []
    if trades:
        # One index probe per source (its newest trade), not a scan of its trades.
        parts.append(
            f"SELECT s.id, %s::text, t.newest, true FROM unnest(%s::bigint[]) s(id), "
            f"LATERAL (SELECT max(ts) AS newest FROM {Trade._meta.db_table} "
            "WHERE source_id = s.id) t WHERE t.newest IS NOT NULL"
        )
        params += [NEWEST_TRADE, source_ids]
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


def event_rows(
    source_ids: list[int],
    types: set[str],
    since: datetime | None,
    newest_types: set[str],
    *,
    trades: bool = False,
) -> Iterable[tuple[int, str, datetime, bool]]:
    """What `events_read` reads, through the ORM."""
    rows: list[tuple[int, str, datetime, bool]] = []
    if trades:
        rows += [
            (source_id, NEWEST_TRADE, newest, True)
            for source_id, newest in Trade.objects.filter(source_id__in=source_ids)
            .values("source_id")
            .annotate(newest=Max("ts"))
            .values_list("source_id", "newest")
        ]
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
