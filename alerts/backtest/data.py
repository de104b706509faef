"""What a backtest reads: a source's stored samples, events and trades, in bulk.

Samples come out of PostgreSQL as two binary arrays per series, read straight into
numpy (a month of 1 s samples is 2.6 M rows: one round trip, no Python object per
row); other databases (the embedded SQLite mode) go through the ORM. Times are integer
microseconds since the UNIX epoch (UTC) throughout, turned into datetimes only where
the engine judges.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
from django.db import connection
from django.db.models import Max, Min

from metrics.models import Event, MetricSample, MetricSeries, Trade

Micros = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

US: Final = 1_000_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
_PG_EPOCH_US: Final = 946_684_800 * US
_EMPTY_TS: Final = np.zeros(0, dtype=np.int64)
# Its batches have the source's trading metrics derived, then every rule judged.
EQUITY: Final = "equity"
_EMPTY_VALUES: Final = np.zeros(0, dtype=np.float64)


def micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def moment(us: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


# One row: the samples' times and values as two binary arrays (`array_send`), in time
# order from the primary key's index. Two arrays cost the server far less than one row
# per sample, and are read straight into numpy.
_SAMPLES: Final = (
    "SELECT array_send(coalesce(array_agg(ts), '{}')), "
    "array_send(coalesce(array_agg(value), '{}')) "
    f"FROM (SELECT ts, value FROM {MetricSample._meta.db_table} "
    "WHERE series_id = %s AND ts > %s AND ts <= %s ORDER BY ts) AS s"
)


def _array(data: bytes, code: str) -> npt.NDArray[Any]:
    """The elements of a one-dimensional binary array without NULLs (`array_send`)."""
    view = memoryview(data)
    dimensions = int.from_bytes(view[0:4], "big")
    if dimensions == 0:
        return np.zeros(0, dtype=code)
    # header: dimensions, has-nulls flag, element type, then (length, lower bound) each
    elements = view[12 + 8 * dimensions :]
    return np.frombuffer(elements, dtype=np.dtype([("length", ">i4"), ("value", code)]))["value"]


def samples_read(series_id: int, after: datetime, until: datetime) -> tuple[Micros, Floats]:
    """The samples of one series with after < ts <= until, oldest first."""
    if _postgresql():
        if until - after > SPLIT_READS_LONGER_THAN and not connection.in_atomic_block:
            ts, values = _read_in_halves(series_id, after, until)
        else:
            connection.ensure_connection()
            ts, values = _samples_query(connection.connection, series_id, after, until)
        if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            order = np.argsort(ts, kind="stable")  # never seen: the subquery's order holds
            ts, values = ts[order], values[order]
        return ts, values
    pairs = list(
        MetricSample.objects.filter(series_id=series_id, ts__gt=after, ts__lte=until)
        .order_by("ts")
        .values_list("ts", "value")
    )
    if not pairs:
        return _EMPTY_TS, _EMPTY_VALUES
    return (
        np.array([micros(ts) for ts, _ in pairs], dtype=np.int64),
        np.array([value for _, value in pairs], dtype=np.float64),
    )


# A read of more than this is split in two halves read at once, each on a connection
# of its own: the server's scan of a month of samples is most of a backtest's time, and
# two of its processes halve it (outside a transaction only: another connection would
# not see what the caller's transaction has not committed).
SPLIT_READS_LONGER_THAN: Final = timedelta(days=2)


def _samples_query(
    conn: psycopg.Connection[Any], series_id: int, after: datetime, until: datetime
) -> tuple[Micros, Floats]:
    # A plain (server-side binding) cursor: binary results, which Django's client-side
    # cursors cannot give.
    with psycopg.Cursor(conn) as cursor:
        cursor.execute(_SAMPLES, [series_id, after, until], binary=True)
        row = cursor.fetchone()
    assert row is not None
    ts = _array(row[0], ">i8").astype(np.int64) + _PG_EPOCH_US
    return ts, _array(row[1], ">f8").astype(np.float64)


def _read_in_halves(series_id: int, after: datetime, until: datetime) -> tuple[Micros, Floats]:
    middle = after + (until - after) / 2
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key not in ("cursor_factory", "context", "prepare_threshold")
    }

    def half(bounds: tuple[datetime, datetime]) -> tuple[Micros, Floats]:
        with psycopg.connect(**params) as conn:
            return _samples_query(conn, series_id, *bounds)

    with ThreadPoolExecutor(max_workers=1) as pool:
        later = pool.submit(half, (middle, until))
        connection.ensure_connection()
        first = _samples_query(connection.connection, series_id, after, middle)
        second = later.result()
    return np.concatenate((first[0], second[0])), np.concatenate((first[1], second[1]))


def newest_before(series_id: int, at: datetime) -> tuple[int, float] | None:
    """The newest sample of a series at or before `at` (µs, value), however old."""
    row = (
        MetricSample.objects.filter(series_id=series_id, ts__lte=at)
        .order_by("-ts")
        .values_list("ts", "value")
        .first()
    )
    return None if row is None else (micros(row[0]), row[1])


def first_sample(series_ids: Iterable[int]) -> dict[int, int]:
    """When each series got its first sample still stored (µs): from then on it exists."""
    return {
        series_id: micros(first)
        for series_id, first in MetricSample.objects.filter(series_id__in=list(series_ids))
        .values("series_id")
        .annotate(first=Min("ts"))
        .values_list("series_id", "first")
        if first is not None
    }


def instants_merge(*parts: Micros) -> Micros:
    """The distinct instants of sorted arrays, in order (a sort, not numpy's hashing
    `unique`, which is far slower on millions of nearly ordered stamps)."""
    merged = np.concatenate(parts) if parts else _EMPTY_TS
    merged.sort(kind="stable")
    if len(merged) < 2:
        return merged
    keep = np.empty(len(merged), dtype=bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def _sample_stamps(
    source_id: int, names: list[str], after: datetime, until: datetime, known: list[int]
) -> Micros:
    """The distinct times of the source's samples of `names`, but for series `known`."""
    table, series = MetricSample._meta.db_table, MetricSeries._meta.db_table
    if not names:
        return _EMPTY_TS
    if _postgresql():
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                "SELECT array_send(coalesce(array_agg(DISTINCT s.ts), '{}')) "
                f"FROM {table} s JOIN {series} r ON r.id = s.series_id "
                "WHERE r.source_id = %s AND r.name = ANY(%s) AND s.ts > %s AND s.ts <= %s "
                "AND r.id <> ALL(%s)",
                [source_id, names, after, until, known],
                binary=True,
            )
            row = cursor.fetchone()
        assert row is not None
        return _array(row[0], ">i8").astype(np.int64) + _PG_EPOCH_US
    return instants_merge(
        _stamps(
            MetricSample.objects.filter(
                series__source_id=source_id, series__name__in=names, ts__gt=after, ts__lte=until
            )
            .exclude(series_id__in=known)
            .values_list("ts", flat=True)
        )
    )


@dataclass(frozen=True)
class Arrivals:
    """When data arrived that makes the live engine evaluate a rule (`alerts.trigger`),
    as the product knows it: stamped with its own time (samples carry no arrival time)."""

    # Samples of the metrics the rule reads (its metric, its guard): the evaluation
    # after them judges the rules reading those metrics.
    reading: Micros
    # Events, trades and equity (derivation): the evaluation after them judges every rule.
    every_rule: Micros


def arrival_times(
    source_id: int,
    names: Iterable[str],
    after: datetime,
    until: datetime,
    *,
    known: Iterable[int] = (),
) -> Arrivals:
    """The arrivals of after < ts <= until: samples of `names` (but for the series
    `known`, which the caller read already), events, trades and equity."""
    known = list(known)
    reading = _sample_stamps(source_id, sorted(set(names) - {EQUITY}), after, until, known)
    every = [_sample_stamps(source_id, [EQUITY], after, until, known)]
    for model in (Event, Trade):
        every.append(
            _stamps(
                model.objects.filter(source_id=source_id, ts__gt=after, ts__lte=until).values_list(
                    "ts", flat=True
                )
            )
        )
    return Arrivals(reading, instants_merge(*every))


def _stamps(moments: Iterable[datetime]) -> Micros:
    stamps = np.array([micros(ts) for ts in moments], dtype=np.int64)
    stamps.sort()
    return stamps


def beat_ticks(start: datetime, end: datetime, every: timedelta) -> Micros:
    """Beat's evaluations of every source in [start, end]: each whole multiple of its
    interval since the epoch (beat's own phase is not stored; any fixed one will do)."""
    step = max(1, micros(EPOCH + every))
    first = -(-micros(start) // step) * step
    return np.arange(first, micros(end) + 1, step, dtype=np.int64)


@dataclass(frozen=True)
class EventStamps:
    """Events of some types of one source: their times, oldest first, per type; the
    newest before the period is included, so "the newest so far" is known throughout."""

    by_type: dict[str, Micros]

    def get(self, kind: str) -> Micros:
        return self.by_type.get(kind, _EMPTY_TS)


def events_read(
    source_id: int, types: Iterable[str], after: datetime, until: datetime
) -> EventStamps:
    """Events of `types` with after < ts <= until, plus each type's newest at or before
    `after` (for absence and kill-switch state at the start)."""
    types = sorted(set(types))
    by_type: dict[str, list[int]] = {kind: [] for kind in types}
    if not types:
        return EventStamps({})
    for kind, newest in (
        Event.objects.filter(source_id=source_id, type__in=types, ts__lte=after)
        .values("type")
        .annotate(newest=Max("ts"))
        .values_list("type", "newest")
    ):
        by_type[kind].append(micros(newest))
    for kind, ts in (
        Event.objects.filter(source_id=source_id, type__in=types, ts__gt=after, ts__lte=until)
        .order_by("ts")
        .values_list("type", "ts")
    ):
        by_type[kind].append(micros(ts))
    return EventStamps({kind: np.array(stamps, dtype=np.int64) for kind, stamps in by_type.items()})


def trades_read(source_id: int, after: datetime, until: datetime) -> Micros:
    """The times of the source's trades with after < ts <= until, oldest first, and the
    newest at or before `after` (for "the newest order so far" at the start)."""
    older = Trade.objects.filter(source_id=source_id, ts__lte=after).aggregate(newest=Max("ts"))
    stamps = _stamps(
        Trade.objects.filter(source_id=source_id, ts__gt=after, ts__lte=until).values_list(
            "ts", flat=True
        )
    )
    if older["newest"] is None:
        return stamps
    return np.concatenate(([micros(older["newest"])], stamps)).astype(np.int64)
