"""Selectors for reading metrics: a source's snapshot, and time-range queries.

Reads only. Time buckets are aligned to the UNIX epoch (a 5-minute bucket starts at
:00, :05, ...) and aggregated in SQL by `EpochBucket`, which speaks PostgreSQL and
the embedded SQLite. The bucket arithmetic and the shaping of rows into series are
plain functions above the queries, tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from django.db import NotSupportedError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Avg, BigIntegerField, Count, F, Func, Max, Min, Sum, Window
from django.db.models.expressions import Expression
from django.db.models.functions import RowNumber
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from core.query_params import EMPTY_LABELS_KEY, Aggregation, ParamError, labels_key

from .models import Event, MetricSample, MetricSeries, Source, SourceHeartbeat, Trade
from .schedules import heartbeat_clock
from .trading import METRICS as TRADING_METRICS

MAX_SERIES: Final = 500
MAX_BUCKETS: Final = 10_000
# Raw points are for looking closely at a short range; beyond this, use a step.
MAX_RAW_POINTS: Final = 10_000
# MAX_BUCKETS for a few series; a response past this is a few MB of JSON.
MAX_BUCKETED_POINTS: Final = 100_000
SNAPSHOT_EVENTS: Final = 10

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Point = tuple[datetime, float]


@dataclass(frozen=True)
class SeriesPoints:
    """The points of one series in a query: its labels, then (time, value) in time order."""

    labels: dict[str, str]
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class QueryResult:
    """Every series a query matched; `truncated` when the point limit cut it short."""

    series: list[SeriesPoints]
    truncated: bool
    limit: int


# --- pure: buckets and shaping -----------------------------------------------------------


def bucket_index(ts: datetime, step: timedelta) -> int:
    """Which `step`-wide bucket, counted from the UNIX epoch, `ts` falls in.

    Integer arithmetic on timedeltas (microseconds), so a sample exactly on a bucket
    boundary always starts that bucket, as it does in SQL.
    """
    return (ts - _EPOCH) // step


def bucket_start(index: int, step: timedelta) -> datetime:
    """The time a bucket starts at (UTC)."""
    return _EPOCH + index * step


def bucket_count(start: datetime, end: datetime, step: timedelta) -> int:
    """How many buckets the closed range [start, end] touches."""
    return bucket_index(end, step) - bucket_index(start, step) + 1


def check_bucket_count(start: datetime, end: datetime, step: timedelta) -> None:
    """Refuse a step that would cut the range into more than `MAX_BUCKETS` buckets."""
    count = bucket_count(start, end, step)
    if count > MAX_BUCKETS:
        range_seconds = (end - start).total_seconds()
        smallest = max(1, int(-(-range_seconds // MAX_BUCKETS)))
        raise ParamError(
            "step",
            f"cuts the range into {count} buckets; at most {MAX_BUCKETS} are allowed "
            f"(use a step of at least {smallest} seconds, or a shorter range)",
        )


def group_rows(
    series: Sequence[tuple[int, Mapping[str, str]]],
    rows: Iterable[tuple[int, datetime, float]],
) -> list[SeriesPoints]:
    """Gather (series id, time, value) rows into one `SeriesPoints` per series.

    Series keep the order given, and a series without rows is kept with no points:
    "this series exists but sent nothing in the range" is worth seeing.
    """
    by_id = {series_id: SeriesPoints(labels=dict(labels)) for series_id, labels in series}
    for series_id, ts, value in rows:
        by_id[series_id].points.append((ts, value))
    return list(by_id.values())


def heartbeat_overdue(*, age: timedelta, period: timedelta, grace: timedelta) -> bool:
    """True when a heartbeat this old is later than the source's period and grace allow."""
    return age > period + grace


# --- SQL ----------------------------------------------------------------------------------


class EpochBucket(Func):
    """Index of the `step_seconds`-wide bucket a timestamp falls in, counted from the epoch.

    Written per database (there is no portable SQL for it); `step_seconds` is a whole
    number of seconds, so dropping sub-second digits (SQLite's `%s`) never moves a
    sample to another bucket.
    """

    output_field = BigIntegerField()

    def __init__(self, expression: Any, step_seconds: int) -> None:
        if step_seconds < 1:
            raise ValueError("step_seconds must be at least 1")
        super().__init__(expression)
        self.step_seconds = step_seconds

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        raise NotSupportedError(f"Time buckets are not written for {connection.vendor}.")

    def _compile(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, template: str
    ) -> tuple[str, tuple[Any, ...]]:
        expression: Expression = self.get_source_expressions()[0]
        sql, params = compiler.compile(expression)
        return template.format(ts=sql), (*params, self.step_seconds)

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        # EXTRACT(EPOCH ...) is numeric since PostgreSQL 14: exact, no float rounding
        # at bucket boundaries.
        return self._compile(compiler, connection, "FLOOR(EXTRACT(EPOCH FROM {ts}) / %s)::bigint")

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        # Integer division of non-negative integers is floor; `%%` is a literal `%`.
        return self._compile(compiler, connection, "(CAST(strftime('%%s', {ts}) AS INTEGER) / %s)")


_AGGREGATES: Final[Mapping[str, type[Func]]] = {
    "avg": Avg,
    "min": Min,
    "max": Max,
    "sum": Sum,
    "count": Count,
}


def _bucketed_rows(
    samples: Any, *, step: timedelta, aggregation: Aggregation, limit: int
) -> Iterable[tuple[int, datetime, float]]:
    """(series id, bucket start, aggregate) rows, one more than `limit` at most."""
    bucket = EpochBucket("ts", int(step.total_seconds()))
    if aggregation == "last":
        # The newest sample of each bucket: rank samples within (series, bucket) by
        # time and keep the first (Django turns the filter into a QUALIFY subquery).
        rows = (
            samples.annotate(
                bucket=bucket,
                rank=Window(
                    RowNumber(),
                    partition_by=[F("series_id"), F("bucket")],
                    order_by=F("ts").desc(),
                ),
            )
            .filter(rank=1)
            .order_by("series_id", "bucket")
            .values_list("series_id", "bucket", "value")
        )
    else:
        rows = (
            samples.annotate(bucket=bucket)
            .values("series_id", "bucket")
            .annotate(aggregate=_AGGREGATES[aggregation]("value"))
            .order_by("series_id", "bucket")
            .values_list("series_id", "bucket", "aggregate")
        )
    for series_id, index, value in rows[: limit + 1]:
        yield series_id, bucket_start(index, step), value


# --- selectors ----------------------------------------------------------------------------


def source_find(ref: str) -> Source | None:
    """The source with this id (all digits) or name; a name wins only if no id matches."""
    # isascii: str.isdigit() is also true of digits int() refuses, such as "²".
    if ref.isascii() and ref.isdigit():
        found = Source.objects.filter(pk=int(ref)).first()
        if found is not None:
            return found
    return Source.objects.filter(name=ref).first()


def metric_query(
    *,
    source: Source,
    name: str,
    labels: Mapping[str, str] | None,
    start: datetime,
    end: datetime,
    step: timedelta | None,
    aggregation: Aggregation,
) -> QueryResult:
    """Samples of a source's metric in [start, end], raw or aggregated per time bucket.

    `labels` picks one series exactly (`{}` is the series without labels); None takes
    every series of the name, each returned with its labels. With `step`, each
    epoch-aligned bucket becomes one point stamped with the bucket's start (the first
    bucket may start before `start`, but only samples in the range count); empty
    buckets are left out. Without `step`, the raw samples are returned and
    `aggregation` is not used. Points are capped (`MAX_RAW_POINTS`,
    `MAX_BUCKETED_POINTS`) in series then time order; `truncated` says so.

    Raises `ParamError` (field `step` or `labels`) for a query too large to answer.
    """
    if step is not None:
        check_bucket_count(start, end, step)
    limit = MAX_RAW_POINTS if step is None else MAX_BUCKETED_POINTS
    matching = MetricSeries.objects.filter(source=source, name=name)
    if labels is not None:
        matching = matching.filter(labels_key=labels_key(labels))
    series = list(matching.order_by("labels_key").values_list("id", "labels")[: MAX_SERIES + 1])
    if len(series) > MAX_SERIES:
        raise ParamError(
            "labels",
            f"{name!r} has more than {MAX_SERIES} series on this source; pick one with labels",
        )
    if not series:
        return QueryResult(series=[], truncated=False, limit=limit)
    samples = MetricSample.objects.filter(
        series_id__in=[series_id for series_id, _ in series], ts__gte=start, ts__lte=end
    )
    rows: list[tuple[int, datetime, float]]
    if step is None:
        rows = list(
            samples.order_by("series_id", "ts").values_list("series_id", "ts", "value")[: limit + 1]
        )
    else:
        rows = list(_bucketed_rows(samples, step=step, aggregation=aggregation, limit=limit))
    truncated = len(rows) > limit
    return QueryResult(series=group_rows(series, rows[:limit]), truncated=truncated, limit=limit)


def source_snapshot(*, source: Source, now: datetime | None = None) -> dict[str, Any]:
    """Everything known about a source right now, in plain values (JSON-ready but datetimes).

    `metrics` lists every series with its latest value; the derived trading metrics
    (`metrics.trading.METRICS`, stored without labels) are pulled out into `trading`,
    keyed by name in `METRICS` order, or None when the source has none. `heartbeat`
    is None until the first one arrives.
    """
    now = now or timezone.now()
    metrics: list[dict[str, Any]] = []
    trading: dict[str, dict[str, Any]] = {}
    for name, labels, key, value, ts in (
        MetricSeries.objects.filter(source=source)
        .order_by("name", "labels_key")
        .values_list("name", "labels", "labels_key", "last_value", "last_ts")
    ):
        if ts is None:
            continue  # no value now (a derived metric a late input made undefined)
        if key == EMPTY_LABELS_KEY and name in TRADING_METRICS:
            trading[name] = {"value": value, "ts": ts}
        else:
            metrics.append({"name": name, "labels": labels, "value": value, "ts": ts})

    heartbeat: dict[str, Any] | None = None
    beat = (
        SourceHeartbeat.objects.filter(source=source).values("status", "info", "last_seen").first()
    )
    if beat is not None:
        age = max(now - beat["last_seen"], timedelta(0))
        # Outside its schedule a quiet source is market closed, never overdue; in session
        # its heartbeat is due from the opening at the earliest.
        closed, due_for = heartbeat_clock(source, beat["last_seen"], now)
        heartbeat = {
            **beat,
            "age_seconds": round(age.total_seconds(), 3),
            "overdue": not closed
            and heartbeat_overdue(
                age=due_for, period=source.heartbeat_period, grace=source.heartbeat_grace
            ),
            "market_closed": closed,
        }

    trades = Trade.objects.filter(source=source).aggregate(count=Count("id"), last_ts=Max("ts"))
    events = list(
        Event.objects.filter(source=source)
        .order_by("-ts", "-id")
        .values("type", "message", "ts")[:SNAPSHOT_EVENTS]
    )
    return {
        "source": {
            "id": source.pk,
            "name": source.name,
            "kind": source.kind,
            "enabled": source.enabled,
            # .all() rather than values_list: uses the tags a caller prefetched.
            "tags": sorted(tag.name for tag in source.tags.all()),
        },
        "generated_at": now,
        "metrics": metrics,
        "trading": {name: trading[name] for name in TRADING_METRICS if name in trading} or None,
        "heartbeat": heartbeat,
        "trades": {"count": trades["count"], "last_ts": trades["last_ts"]},
        "events": events,
    }


def latest_values(
    *, source_ids: Sequence[int] | None = None, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Each source's series with their latest values, in two queries, sources by name.

    `source_ids` None: every source; `names` None: every metric. A source without a value
    (yet) of those metrics is listed with none, so a reader sees it exists.
    """
    sources = Source.objects.order_by("name").values_list("id", "name")
    series = MetricSeries.objects.filter(last_ts__isnull=False).order_by(
        "source_id", "name", "labels_key"
    )
    if source_ids is not None:
        sources = sources.filter(id__in=source_ids)
        series = series.filter(source_id__in=source_ids)
    if names is not None:
        series = series.filter(name__in=names)
    by_source: dict[int, list[dict[str, Any]]] = {}
    for source_id, name, labels, value, ts in series.values_list(
        "source_id", "name", "labels", "last_value", "last_ts"
    ):
        by_source.setdefault(source_id, []).append(
            {"name": name, "labels": labels, "value": value, "ts": ts}
        )
    return [
        {"id": source_id, "name": name, "metrics": by_source.get(source_id, [])}
        for source_id, name in sources
    ]
