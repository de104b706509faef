"""Storing validated batches: samples by COPY, latest values, trades, events, heartbeats.

Every function here writes one batch in one transaction: a batch is stored whole or
not at all. What must happen after the data is visible (rule evaluation, derived
trading metrics) is queued with `transaction.on_commit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .changes import source_changed_on_commit
from .models import (
    DerivationRequest,
    Event,
    MetricSample,
    MetricSeries,
    Source,
    SourceHeartbeat,
    Trade,
    TradeId,
)
from .validation import EMPTY_LABELS_KEY, EventIn, HeartbeatIn, Sample, TradeIn

SAMPLE_TABLE = MetricSample._meta.db_table
SERIES_TABLE = MetricSeries._meta.db_table
TRADE_TABLE = Trade._meta.db_table
TRADE_ID_TABLE = TradeId._meta.db_table

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
    # The batch's distinct series in order of appearance, in one pass (a bot sends a few
    # series many times).
    keys = {(name, labels_key): None for name, _, labels_key, _, _ in samples}
    resolved: dict[tuple[str, str], int] = {}
    missing: list[tuple[str, str]] = []
    for key in keys:
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
            # The labels of each new series, from its first sample.
            wanted: dict[tuple[str, str], Mapping[str, str]] = {}
            for name, labels, labels_key, _, _ in samples:
                wanted.setdefault((name, labels_key), labels)
            # Two batches may create the same series at once: the unique constraint
            # lets one win, the other then reads the winner's row.
            MetricSeries.objects.bulk_create(
                [
                    MetricSeries(
                        source=source, name=name, labels=wanted[(name, key)], labels_key=key
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


# PostgreSQL: rows in as three arrays (series ids, times, values).
_UPSERT_SAMPLES = (
    f"INSERT INTO {SAMPLE_TABLE} (series_id, ts, value) "
    "SELECT * FROM unnest(%s::int8[], %s::timestamptz[], %s::float8[]) "
    "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
)
_UPDATE_LATEST = (
    f"UPDATE {SERIES_TABLE} AS s SET last_ts = v.ts, last_value = v.value "
    "FROM unnest(%s::int8[], %s::timestamptz[], %s::float8[]) AS v(id, ts, value) "
    "WHERE s.id = v.id AND (s.last_ts IS NULL OR s.last_ts <= v.ts)"
)


def _columns(rows: Sequence[tuple[int, datetime, float]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[], [], []]


def _latest_rows(latest: dict[int, tuple[datetime, float]]) -> list[tuple[int, datetime, float]]:
    return [(series_id, ts, value) for series_id, (ts, value) in sorted(latest.items())]


def _upsert_samples(rows: Sequence[tuple[int, datetime, float]]) -> None:
    """Insert rows, replacing the value of a sample already stored at the same instant."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_UPSERT_SAMPLES, _columns(rows))
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
            cursor.execute(_UPDATE_LATEST, _columns(_latest_rows(latest)))
        else:
            cursor.executemany(
                f"UPDATE {SERIES_TABLE} SET last_ts = %s, last_value = %s "
                "WHERE id = %s AND (last_ts IS NULL OR last_ts <= %s)",
                [(ts, value, series_id, ts) for series_id, (ts, value) in ordered],
            )


def _rows_of(
    series_ids: dict[tuple[str, str], int], samples: Sequence[Sample]
) -> tuple[list[tuple[int, datetime, float]], dict[int, tuple[datetime, float]]]:
    """The rows to store, and each series' newest (time, value) among them."""
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
    return [(series_id, ts, value) for (series_id, ts), value in rows.items()], latest


def computed_samples_store(
    *,
    source: Source,
    samples: Sequence[Sample],
    also: tuple[str, Sequence[Any]] | None = None,
) -> None:
    """Store samples Tradewatch computed itself (derived metrics), in the caller's
    transaction: an upsert (a value computed again replaces the first), no savepoint,
    nothing queued. `also`: one more write statement (SQL, parameters), sent with them.

    On PostgreSQL all of it is one statement, its parameters sent in binary: derivation
    runs after every batch of equity or trades, and each round trip showed in its cost.
    """
    rows, latest = _rows_of(_resolve_series(source, samples), samples) if samples else ([], {})
    if connection.vendor != "postgresql":
        if rows:
            _upsert_samples(rows)
            _update_latest(latest)
        if also is not None:
            with connection.cursor() as cursor:
                cursor.execute(*also)
        return
    _write_together(rows, latest, also=also)


# A batch of at most this many samples is written by one upsert statement with its
# latest values (1 round trip), not by COPY in a savepoint and an update (5): a bot
# sending a few metrics every tick waits for its answer, and most batches are small.
SMALL_BATCH_ROWS = 64


def _write_together(
    rows: Sequence[tuple[int, datetime, float]],
    latest: dict[int, tuple[datetime, float]],
    *,
    also: tuple[str, Sequence[Any]] | None = None,
    server_binding: bool = False,
) -> None:
    """Upsert `rows` and move the latest values of `latest`'s series, in one statement
    (PostgreSQL); `also`: one more write statement sent with them. `server_binding`: the
    parameters go apart from the statement, arrays in binary, rather than spelt into its
    text (a third less of the web process's time for a batch's arrays)."""
    parts, params = [], []
    if rows:
        parts.append(f"stored AS ({_UPSERT_SAMPLES})")
        params += _columns(rows)
    if latest:
        parts.append(f"latest AS ({_UPDATE_LATEST})")
        params += _columns(_latest_rows(latest))
    if also is not None:
        parts.append(f"also AS ({also[0]})")
        params += list(also[1])
    if not parts:
        return
    statement = f"WITH {', '.join(parts)} SELECT 1"
    with connection.cursor() as cursor:
        if server_binding:
            # Django's cursor binds on the client; this one, on the same connection and
            # in the same transaction, binds on the server (and prepares nothing).
            with psycopg.Cursor(cursor.cursor.connection) as bound:
                bound.execute(statement, params)
        else:
            cursor.cursor.execute(statement, params)


def metric_ingest(*, source: Source, samples: Sequence[Sample], evaluate: bool = True) -> int:
    """Store a validated batch of samples and their series' latest values; return the count.

    Once committed, the change is announced (`metrics.changes`) with the batch's metric
    names: evaluation decides whether a rule reads them. `evaluate=False` is for writers
    that evaluate right after themselves (derivation).

    On PostgreSQL a small batch of known series is one statement (samples, latest
    values and the derivation request together), atomic by itself: outside a
    transaction it needs no BEGIN and COMMIT, two round trips fewer for the bot waiting.
    A large batch is a COPY and one statement for the rest.
    """
    postgresql = connection.vendor == "postgresql"
    if postgresql and len(samples) <= SMALL_BATCH_ROWS:
        series_ids = _known_series(source, samples)
        if series_ids is not None:
            _store(source, samples, series_ids, evaluate=evaluate)
            return len(samples)
    with transaction.atomic():
        _store(source, samples, _resolve_series(source, samples), evaluate=evaluate)
    return len(samples)


def _known_series(source: Source, samples: Sequence[Sample]) -> dict[tuple[str, str], int] | None:
    """The series ids of every sample from this process's memory; None if one is new."""
    known: dict[tuple[str, str], int] = {}
    for sample in samples:
        key = (sample.name, sample.labels_key)
        series_id = _series_ids.get((source.pk, *key))
        if series_id is None:
            return None
        known[key] = series_id
    return known


def _store(
    source: Source,
    samples: Sequence[Sample],
    series_ids: dict[tuple[str, str], int],
    *,
    evaluate: bool,
) -> None:
    rows, latest = _rows_of(series_ids, samples)
    touches_equity = (EQUITY_METRIC, EMPTY_LABELS_KEY) in series_ids
    since = (
        min(
            sample.ts
            for sample in samples
            if sample.name == EQUITY_METRIC and sample.labels_key == EMPTY_LABELS_KEY
        )
        if touches_equity
        else None
    )
    if connection.vendor != "postgresql":
        _copy_samples(rows)
        _update_latest(latest)
        if since is not None:
            _derivation_request(source, since=since)
    else:
        also = None if since is None else (_DERIVATION_REQUEST, [source.pk, since])
        if len(rows) <= SMALL_BATCH_ROWS:
            _write_together(rows, latest, also=also, server_binding=True)
        else:
            _copy_samples(rows)
            _write_together([], latest, also=also, server_binding=True)
    if evaluate:
        source_changed_on_commit(
            source.pk, names={name for name, _ in series_ids}, derive=touches_equity
        )


def trade_ingest(*, source: Source, trades: Sequence[TradeIn]) -> TradesStored:
    """Store new trades; ids already stored for the source (or repeated) are duplicates."""
    unique: dict[str, TradeIn] = {}
    for trade in trades:
        unique.setdefault(trade.trade_id, trade)
    with transaction.atomic():
        stored = _insert_new_trades(source, list(unique.values()), received_at=timezone.now())
        if stored:
            _derivation_request(source, since=min(stored))
        source_changed_on_commit(source.pk, derive=bool(stored))
    return TradesStored(accepted=len(stored), duplicates=len(trades) - len(stored))


def _insert_new_trades(
    source: Source, trades: Sequence[TradeIn], *, received_at: datetime
) -> list[datetime]:
    """Insert trades whose id is new for the source; return the times of those inserted.

    The id is claimed in `TradeId` first (its unique key spans every partition of the
    trades table); only the trades whose claim went through are stored.
    """
    columns = "source_id, trade_id, symbol, side, quantity, price, pnl, fee, ts, received_at"
    claim = "ON CONFLICT (source_id, trade_id) DO NOTHING"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "WITH t AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::timestamptz[]) "
                "AS t(trade_id, symbol, side, quantity, price, pnl, fee, ts)), "
                f"claimed AS (INSERT INTO {TRADE_ID_TABLE} (source_id, trade_id, ts) "
                f"SELECT %s, trade_id, ts FROM t {claim} RETURNING trade_id) "
                f"INSERT INTO {TRADE_TABLE} ({columns}) "
                "SELECT %s, t.*, %s FROM t JOIN claimed USING (trade_id) RETURNING ts",
                [
                    [t.trade_id for t in trades],
                    [t.symbol for t in trades],
                    [t.side for t in trades],
                    [t.quantity for t in trades],
                    [t.price for t in trades],
                    [t.pnl for t in trades],
                    [t.fee for t in trades],
                    [t.ts for t in trades],
                    source.pk,
                    source.pk,
                    received_at,
                ],
            )
            return [ts for (ts,) in cursor.fetchall()]
        inserted: list[datetime] = []
        for t in trades:
            cursor.execute(
                f"INSERT INTO {TRADE_ID_TABLE} (source_id, trade_id, ts) VALUES (%s, %s, %s) "
                f"{claim}",
                [source.pk, t.trade_id, t.ts],
            )
            if not cursor.rowcount:
                continue
            cursor.execute(
                f"INSERT INTO {TRADE_TABLE} ({columns}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
            inserted.append(t.ts)
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
        source_changed_on_commit(source.pk)
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
        source_changed_on_commit(source.pk)
    return current


_DERIVATION_REQUEST = (
    f"INSERT INTO {DerivationRequest._meta.db_table} (source_id, since) VALUES (%s, %s)"
)


def _derivation_request(source: Source, *, since: datetime) -> None:
    """Record, in the batch's transaction, that equity or trades from `since` on were
    stored: derivation takes it (`metrics.derived`), even if the hint queued after commit
    is lost with the cache or the broker."""
    DerivationRequest.objects.create(source=source, since=since)
