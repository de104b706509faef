"""Storing validated batches: samples by COPY, latest values, trades, events, heartbeats.

Every function here writes one batch in one transaction: a batch is stored whole or
not at all. What must happen after the data is visible (rule evaluation, derived
trading metrics) is queued with `transaction.on_commit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .models import Event, MetricSample, MetricSeries, Source, SourceHeartbeat, Trade
from .tasks import evaluation_wanted
from .validation import EventIn, HeartbeatIn, Sample, TradeIn

SAMPLE_TABLE = MetricSample._meta.db_table
SERIES_TABLE = MetricSeries._meta.db_table
TRADE_TABLE = Trade._meta.db_table

# Series ids never change once created, so each process remembers them: most batches
# then resolve every series without a query. Bounded; cleared whole when full.
_series_ids: dict[tuple[int, str, str], int] = {}
_SERIES_CACHE_LIMIT = 200_000

# Samples whose arrival should refresh the derived trading metrics of their source.
EQUITY_METRIC = "equity"


@dataclass(frozen=True)
class TradesStored:
    accepted: int
    duplicates: int


def forget_series_cache() -> None:
    """Drop every remembered series id (tests, or after deleting series)."""
    _series_ids.clear()


def _resolve_series(source: Source, samples: Sequence[Sample]) -> dict[tuple[str, str], int]:
    """Map each (name, labels_key) of the batch to its series id, creating what is new."""
    wanted: dict[tuple[str, str], Sample] = {}
    for sample in samples:
        wanted.setdefault((sample.name, sample.labels_key), sample)
    resolved: dict[tuple[str, str], int] = {}
    missing: list[tuple[str, str]] = []
    for key in wanted:
        series_id = _series_ids.get((source.pk, *key))
        if series_id is None:
            missing.append(key)
        else:
            resolved[key] = series_id
    if missing:
        names = {name for name, _ in missing}
        known = {
            (name, labels_key): series_id
            for series_id, name, labels_key in MetricSeries.objects.filter(
                source=source, name__in=names
            ).values_list("id", "name", "labels_key")
        }
        new = [key for key in missing if key not in known]
        if new:
            # Two batches may create the same series at once: the unique constraint
            # lets one win, the other then reads the winner's row.
            MetricSeries.objects.bulk_create(
                [
                    MetricSeries(
                        source=source, name=name, labels=wanted[(name, key)].labels, labels_key=key
                    )
                    for name, key in new
                ],
                ignore_conflicts=True,
            )
            known.update(
                {
                    (name, labels_key): series_id
                    for series_id, name, labels_key in MetricSeries.objects.filter(
                        source=source, name__in={name for name, _ in new}
                    ).values_list("id", "name", "labels_key")
                }
            )
        if len(_series_ids) > _SERIES_CACHE_LIMIT:
            _series_ids.clear()
        for key in missing:
            resolved[key] = known[key]
            _series_ids[(source.pk, *key)] = known[key]
    return resolved


def _copy_samples(rows: Sequence[tuple[int, datetime, float]]) -> None:
    """Write rows with COPY (PostgreSQL); a replayed instant falls back to an upsert."""
    if connection.vendor != "postgresql":
        _upsert_samples(rows)
        return
    from psycopg.errors import UniqueViolation

    try:
        # A savepoint, so that a duplicate (series, ts) aborts only the COPY.
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(
                f"COPY {SAMPLE_TABLE} (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "timestamptz", "float8"])
                for row in rows:
                    copy.write_row(row)
    except (IntegrityError, UniqueViolation):  # the raw cursor raises psycopg's own
        _upsert_samples(rows)


def _upsert_samples(rows: Sequence[tuple[int, datetime, float]]) -> None:
    """Insert rows, replacing the value of a sample already stored at the same instant."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids, stamps, values = zip(*rows, strict=True)
            cursor.execute(
                f"INSERT INTO {SAMPLE_TABLE} (series_id, ts, value) "
                "SELECT * FROM unnest(%s::int8[], %s::timestamptz[], %s::float8[]) "
                "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value",
                [list(ids), list(stamps), list(values)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {SAMPLE_TABLE} (series_id, ts, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value",
                list(rows),
            )


def _update_latest(latest: dict[int, tuple[datetime, float]]) -> None:
    """Move each series' newest value forward (never backward: batches may arrive late)."""
    ordered = sorted(latest.items())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {SERIES_TABLE} AS s SET last_ts = v.ts, last_value = v.value "
                "FROM unnest(%s::int8[], %s::timestamptz[], %s::float8[]) AS v(id, ts, value) "
                "WHERE s.id = v.id AND (s.last_ts IS NULL OR s.last_ts <= v.ts)",
                [
                    [series_id for series_id, _ in ordered],
                    [ts for _, (ts, _) in ordered],
                    [value for _, (_, value) in ordered],
                ],
            )
        else:
            cursor.executemany(
                f"UPDATE {SERIES_TABLE} SET last_ts = %s, last_value = %s "
                "WHERE id = %s AND (last_ts IS NULL OR last_ts <= %s)",
                [(ts, value, series_id, ts) for series_id, (ts, value) in ordered],
            )


def metric_ingest(*, source: Source, samples: Sequence[Sample], evaluate: bool = True) -> int:
    """Store a validated batch of samples and their series' latest values; return the count.

    An evaluation of the source is queued only when a rule reads one of the batch's
    metrics (or it holds equity, the input of derived metrics): see `evaluation_wanted`.
    `evaluate=False` is for writers that evaluate right after themselves (derivation).
    """
    with transaction.atomic():
        series_ids = _resolve_series(source, samples)
        # One row per (series, instant): within a batch the last sample wins, as across
        # batches, so the primary key never sees the same instant twice from one COPY.
        rows: dict[tuple[int, datetime], float] = {}
        latest: dict[int, tuple[datetime, float]] = {}
        # Unpacked, not read by attribute: this loop runs for every sample stored.
        for name, _, labels_key, ts, raw_value in samples:
            series_id = series_ids[(name, labels_key)]
            # float(): the arrays sent to PostgreSQL must not mix ints and floats.
            value = float(raw_value)
            rows[(series_id, ts)] = value
            newest = latest.get(series_id)
            if newest is None or newest[0] <= ts:
                latest[series_id] = (ts, value)
        _copy_samples([(series_id, ts, value) for (series_id, ts), value in rows.items()])
        _update_latest(latest)
        if evaluate:
            names = {name for name, _ in series_ids}
            touches_equity = EQUITY_METRIC in names
            if touches_equity or evaluation_wanted(names):
                _queue_after_commit(source, derive=touches_equity)
    return len(samples)


def trade_ingest(*, source: Source, trades: Sequence[TradeIn]) -> TradesStored:
    """Store new trades; ids already stored for the source (or repeated) are duplicates."""
    unique: dict[str, TradeIn] = {}
    for trade in trades:
        unique.setdefault(trade.trade_id, trade)
    with transaction.atomic():
        stored = _insert_new_trades(source, list(unique.values()), received_at=timezone.now())
        _queue_after_commit(source, derive=stored > 0)
    return TradesStored(accepted=stored, duplicates=len(trades) - stored)


def _insert_new_trades(source: Source, trades: Sequence[TradeIn], *, received_at: datetime) -> int:
    """Insert trades whose id is new for the source; return how many were inserted."""
    columns = "source_id, trade_id, symbol, side, quantity, price, pnl, fee, ts, received_at"
    conflict = "ON CONFLICT (source_id, trade_id) DO NOTHING"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {TRADE_TABLE} ({columns}) "
                "SELECT %s, t.*, %s FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::timestamptz[]) "
                f"AS t {conflict} RETURNING 1",
                [
                    source.pk,
                    received_at,
                    [t.trade_id for t in trades],
                    [t.symbol for t in trades],
                    [t.side for t in trades],
                    [t.quantity for t in trades],
                    [t.price for t in trades],
                    [t.pnl for t in trades],
                    [t.fee for t in trades],
                    [t.ts for t in trades],
                ],
            )
            return len(cursor.fetchall())
        inserted = 0
        for t in trades:
            cursor.execute(
                f"INSERT INTO {TRADE_TABLE} ({columns}) VALUES "
                f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) {conflict}",
                [
                    source.pk,
                    t.trade_id,
                    t.symbol,
                    t.side,
                    t.quantity,
                    t.price,
                    t.pnl,
                    t.fee,
                    t.ts,
                    received_at,
                ],
            )
            inserted += cursor.rowcount
        return inserted


def event_ingest(*, source: Source, events: Sequence[EventIn]) -> int:
    """Store a validated batch of events; return the count."""
    with transaction.atomic():
        Event.objects.bulk_create(
            [
                Event(
                    source=source,
                    type=event.type,
                    message=event.message,
                    context=dict(event.context),
                    ts=event.ts,
                )
                for event in events
            ]
        )
        _queue_after_commit(source, derive=False)
    return len(events)


def heartbeat_record(*, source: Source, heartbeat: HeartbeatIn) -> SourceHeartbeat:
    """Store a source's newest heartbeat (an older one arriving late changes nothing)."""
    with transaction.atomic():
        current, created = SourceHeartbeat.objects.select_for_update().get_or_create(
            source=source,
            defaults={
                "status": heartbeat.status,
                "info": dict(heartbeat.info),
                "last_seen": heartbeat.ts,
                "first_seen": heartbeat.ts,
                "count": 1,
            },
        )
        if not created:
            current.count += 1
            fields = ["count"]
            if heartbeat.ts >= current.last_seen:
                current.status = heartbeat.status
                current.info = dict(heartbeat.info)
                current.last_seen = heartbeat.ts
                fields += ["status", "info", "last_seen"]
            current.save(update_fields=fields)
        _queue_after_commit(source, derive=False)
    return current


def _queue_after_commit(source: Source, *, derive: bool) -> None:
    """Once the batch is visible, evaluate the source's rules (deriving metrics first)."""
    from .tasks import source_changed_soon

    source_id = source.pk
    # Robust: the batch is stored by then, so it is answered 202 even if the cache or the
    # broker is away; beat's evaluation of every source (every 15 s) catches up.
    transaction.on_commit(lambda: source_changed_soon(source_id, derive=derive), robust=True)
