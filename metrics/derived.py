"""Derived trading metrics of a source: fold its new trades and equity, store the results.

The arithmetic lives in `metrics.ledger` and `metrics.trading` (pure); this module
reads the inputs that arrived since the last derivation, folds them into the source's
kept ledger at each input's own time, and writes the results through
`metrics.ingest` under the names of `metrics.trading.METRICS`, so rules and charts
treat them like any other metric.

Cost grows with the new data, not with the history kept:

* Every batch of equity or trades leaves a `DerivationRequest` (in its own
  transaction). Derivation takes them, and folds the inputs newer than the ledger.
* A batch older than the ledger's newest input (late, out of order, an instant sent
  again) restarts the fold from the newest hourly `DerivedCheckpoint` before it, so
  the result is exactly that of folding everything in time order.
* Sharpe and Sortino sample the hourly grid from the checkpoints, once per hour.
* A fold from scratch (a source's first derivation after an upgrade, with a month of
  history) goes in slices of `SLICE_INPUTS`, each in its own transaction.

What is stored, per derived metric: for each hour the new inputs touch, the points
where the metric was lowest and highest, and its value at the newest input (and at the
hour's last input); charts and window rules see a trough inside a batch.
`Derivation.extremes` hands the lowest and highest points of the new batches' inputs to
evaluation, so a rule on a metric's newest value judges those too.

Times inside the fold are integer microseconds since the epoch (`metrics.ledger.micros`):
exact, and read from the database as such (parsing a timestamp per input was most of a
long fold's cost).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, Final, cast

from django.db import connection, transaction
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from . import trading
from .derived_extremes import Envelope, Extremes
from .ingest import EQUITY_METRIC, computed_samples_store
from .ledger import Ledger, RecentTrades, from_micros, grid_times, micros, returns_ratios
from .models import (
    DerivationRequest,
    DerivedCheckpoint,
    DerivedState,
    MetricSample,
    MetricSeries,
    Source,
    Trade,
)
from .validation import EMPTY_LABELS_KEY

# Equity is what the source itself reports; storing it again would echo the input.
DERIVED_NAMES: Final = frozenset(trading.METRICS) - {EQUITY_METRIC}
CHECKPOINT_PERIOD: Final = trading.DEFAULT_RETURN_PERIOD
_PERIOD: Final = CHECKPOINT_PERIOD // timedelta(microseconds=1)
# Inputs of each kind read (and folded) in one transaction: a second or two of work,
# well inside a task's time limit, and a bounded read.
SLICE_INPUTS: Final = 50_000

# A row as read: (time in microseconds, kind, trade id, symbol, side, quantity, price,
# pnl, fee, equity value); kinds in the order an instant's inputs are folded.
_Row = tuple[Any, ...]
_RECENT, _FILL, _EQUITY, _HEAD = -1, 0, 1, 9
# A timestamptz as integer microseconds since the epoch: exact (that is its resolution).
_MICROS: Final = "(extract(epoch FROM ts) * 1000000)::int8"


@dataclass(frozen=True)
class Derivation:
    """What one derivation did, and what it found."""

    values: dict[str, float]
    as_of: datetime | None
    inputs: int = 0
    # Where a restart from a checkpoint began (None: no restart; the epoch: from scratch).
    rebuilt_from: datetime | None = None
    # metric -> [(time, value)] where it was lowest / highest among the inputs of the
    # batches that asked for this derivation, when that differs from its value now.
    extremes: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    # False: a slice of a long fold; the rest is left as a request (see `SLICE_INPUTS`).
    complete: bool = True


def trading_metrics_derive(*, source: Source) -> Derivation:
    """Bring the source's derived trading metrics up to date with its stored inputs
    (or, for a long fold, one more slice of the way: see `Derivation.complete`)."""
    with transaction.atomic():
        ledger, since, inputs = _state_take(source)
        restart: datetime | None = None
        if ledger.as_of is None:
            # From scratch: what was read is what a fold from scratch reads.
            restart = _restart_before(source, None)[1]
        elif since is not None and micros(since) <= ledger.as_of:
            # A batch older than the newest input: fold again from the checkpoint before it.
            ledger, restart = _restart_before(source, since)
            inputs = _input_rows(source, ledger.as_of)
        fold = _Fold(
            source,
            ledger,
            since=None if since is None else micros(since),
            restart=restart is not None,
        )
        complete = fold.run(*inputs)
        if not complete:
            # The rest goes on in order from here, with the next derivation. Inputs of the
            # batches that asked stay "new" (their extremes reach evaluation); those of
            # the history before them do not.
            onward = cast(int, ledger.as_of) + 1
            DerivationRequest.objects.create(
                source=source, since=from_micros(max(onward, fold.since or onward))
            )
        as_of = None if ledger.as_of is None else from_micros(ledger.as_of)
        final: dict[str, float] = {}
        if as_of is not None:
            if fold.checkpoints:
                DerivedCheckpoint.objects.bulk_create(
                    fold.checkpoints,
                    update_conflicts=True,
                    unique_fields=["source", "at"],
                    update_fields=["equity", "ledger"],
                )
            if fold.folded or restart is not None:
                _returns_update(source, ledger, as_of, force=restart is not None)
            final = ledger.values(as_of, fold.recent.count_at(cast(int, ledger.as_of)))
        if fold.folded:
            # Sharpe and Sortino were updated after the fold: the newest point has them.
            fold.envelope.add(cast(int, ledger.as_of), final)
            fold.envelope.flush()
            if restart is not None:
                _derived_samples_delete(source, after=restart)
        computed_samples_store(
            source=source, samples=fold.envelope.rows, also=_state_save(source, ledger)
        )
    final.pop(EQUITY_METRIC, None)
    extremes = fold.extremes.beyond(final)
    extremes.pop(EQUITY_METRIC, None)
    return Derivation(
        values=final,
        as_of=as_of,
        inputs=fold.folded,
        rebuilt_from=restart,
        extremes=extremes,
        complete=complete,
    )


def trading_metrics_catch_up(*, source: Source, budget_seconds: float) -> Derivation:
    """Derive slice after slice until caught up, or until `budget_seconds` are spent (the
    rest stays requested, for the next batch or beat); the extremes of every slice."""
    started = time.monotonic()
    derivation = trading_metrics_derive(source=source)
    extremes = derivation.extremes
    while not derivation.complete and time.monotonic() - started < budget_seconds:
        derivation = trading_metrics_derive(source=source)
        for name, points in derivation.extremes.items():
            extremes[name] = sorted({*extremes.get(name, []), *points})
    return replace(derivation, extremes=extremes)


def pending_derivations() -> list[int]:
    """Sources with batches their derived metrics have not taken in yet."""
    return sorted(set(DerivationRequest.objects.values_list("source_id", flat=True)))


class _Fold:
    """One pass of inputs through a source's ledger, and what it leaves to store."""

    def __init__(self, source: Source, ledger: Ledger, *, since: int | None, restart: bool) -> None:
        self.source = source
        self.ledger = ledger
        # Inputs at or after this belong to the batches that asked: their extremes count.
        self.since = since
        self.recent = RecentTrades()
        self.envelope = Envelope(
            ledger.stored, everything=restart, reported=EQUITY_METRIC, period=_PERIOD
        )
        self.extremes = Extremes()
        self.checkpoints: list[DerivedCheckpoint] = []
        self.folded = 0

    def run(self, rows: list[_Row], complete: bool) -> bool:
        """Fold `rows` (the inputs newer than the ledger, see `_input_rows`); return
        `complete`: False when a slice's worth was read and more may follow."""
        ledger, recent, envelope = self.ledger, self.recent, self.envelope
        since = self.since
        previous: int | None = None
        for row in rows:
            at, kind = row[0], row[1]
            if kind == _RECENT:
                recent.add(at)  # folded already; counts for `trades_last_5m`
                continue
            if previous is not None and at // _PERIOD != envelope.hour:
                # An hour ends: every metric's value at its last input is kept too.
                envelope.add(
                    previous, ledger.values(from_micros(previous), recent.count_at(previous))
                )
            self._checkpoint_if_due(at)
            if kind == _FILL:
                ledger.add_trade(at, _trade(row))
                recent.add(at)
                moved = ledger.trade_path(recent.count_at(at))
            else:
                ledger.add_equity(at, row[9])
                moved = ledger.equity_path()
            envelope.add(at, moved)
            if since is not None and at >= since:
                self.extremes.add(at, moved)
            previous = at
            self.folded += 1
        return complete

    def _checkpoint_if_due(self, at: int) -> None:
        """Before folding an input at `at`: keep the ledger as of the first grid time at
        or after its newest input, if `at` lies beyond that time.

        Nothing arrives between that newest input and the grid time, so this is the
        ledger as of every grid time up to the next checkpoint, and checkpoints stay one
        per hour with inputs (quiet hours cost nothing).
        """
        ledger = self.ledger
        if ledger.as_of is None:
            return
        due = -(-ledger.as_of // _PERIOD) * _PERIOD
        if due >= at or (ledger.checkpointed_at is not None and due <= ledger.checkpointed_at):
            return
        ledger.checkpointed_at = due
        self.checkpoints.append(
            DerivedCheckpoint(
                source=self.source, at=from_micros(due), equity=ledger.equity,
                ledger=ledger.to_json(),
            )
        )  # fmt: skip


def _trade(row: _Row) -> trading.Trade:
    at, _, _, symbol, side, quantity, price, pnl, fee, _ = row
    return trading.Trade(
        ts=from_micros(at), symbol=symbol, side=side, quantity=quantity, price=price, pnl=pnl,
        fee=fee,
    )  # fmt: skip


# --- reading ---------------------------------------------------------------------------


def _state_take(source: Source) -> tuple[Ledger, datetime | None, tuple[list[_Row], bool]]:
    """Lock the source's derived state (creating it) and take its requests: the ledger,
    the earliest `since` of the requests (None without any), and the inputs newer than
    the ledger (as `_input_rows` reads them)."""
    if connection.vendor != "postgresql":
        state, _ = DerivedState.objects.select_for_update().get_or_create(source=source)
        taken = DerivationRequest.objects.filter(source=source)
        since = taken.aggregate(Min("since"))["since__min"]
        taken.delete()
        ledger = Ledger.from_json(state.ledger)
        return ledger, since, _input_rows(source, ledger.as_of)
    # One round trip for all of it: every batch of a bot reporting each second comes
    # through here. The state row is locked, so one derivation per source runs at a time
    # (a source's very first ones have no row to lock yet: they fold from scratch, and
    # agree); ingestion never waits for it (it only inserts requests). A request (and its
    # inputs) committed after this statement began stays for the next derivation.
    # The commit need not wait for the disk: everything written here is computed again
    # from the stored inputs should a crash lose it, and the requests come back with it.
    inputs, params = _inputs_sql(source, "(SELECT as_of FROM state)", [])
    with connection.cursor() as cursor:
        # psycopg's own cursor: server-side binding, so the statement is prepared once
        # per connection and not planned again for every batch.
        cursor.cursor.execute(
            f"WITH taken AS (DELETE FROM {DerivationRequest._meta.db_table} "
            "WHERE source_id = %s RETURNING since), "
            f"state AS (SELECT ledger, as_of FROM {DerivedState._meta.db_table} "
            "WHERE source_id = %s FOR UPDATE) "
            # The head row (kind _HEAD, no time: sorted last) carries the state.
            f"SELECT NULL::int8, {_HEAD}, 0, NULL, NULL, NULL::float8, NULL::float8, "
            "NULL::float8, NULL::float8, NULL::float8, (SELECT ledger::text FROM state), "
            "(SELECT min(since) FROM taken), set_config('synchronous_commit', 'off', true) "
            f"UNION ALL {inputs}",
            [source.pk, source.pk, *params],
        )
        rows = cursor.cursor.fetchall()
    *inputs_read, head = rows
    ledger = Ledger.from_json(json.loads(head[10] or "{}"))
    return ledger, head[11], _sliced([row[:10] for row in inputs_read])


def _state_save(source: Source, ledger: Ledger) -> tuple[str, list[Any]]:
    """The statement that keeps the ledger (sent with the derived samples)."""
    cast_to = "::jsonb" if connection.vendor == "postgresql" else ""
    as_of = None if ledger.as_of is None else from_micros(ledger.as_of)
    return (
        f"INSERT INTO {DerivedState._meta.db_table} (source_id, ledger, as_of, updated_at) "
        f"VALUES (%s, %s{cast_to}, %s, %s) ON CONFLICT (source_id) DO UPDATE SET "
        "ledger = EXCLUDED.ledger, as_of = EXCLUDED.as_of, updated_at = EXCLUDED.updated_at",
        [source.pk, json.dumps(ledger.to_json()), as_of, timezone.now()],
    )


def _restart_before(source: Source, since: datetime | None) -> tuple[Ledger, datetime]:
    """The ledger to fold again from: the newest checkpoint before `since` (None: from
    scratch), with the checkpoints after it dropped; and where that is."""
    checkpoint = None
    if since is not None:
        checkpoint = (
            DerivedCheckpoint.objects.filter(source=source, at__lt=since).order_by("-at").first()
        )
    later = DerivedCheckpoint.objects.filter(source=source)
    if checkpoint is None:
        later.delete()
        return Ledger(), from_micros(0)
    later.filter(at__gt=checkpoint.at).delete()
    return Ledger.from_json(checkpoint.ledger), checkpoint.at


def _input_rows(source: Source, after: int | None) -> tuple[list[_Row], bool]:
    """The source's fills and equity samples newer than `after` (microseconds), in fold
    order (time, then fills before equity, then fills in arrival order), at most a slice
    of each kind; and whether that is all of them (see `_sliced`)."""
    if connection.vendor != "postgresql":  # the embedded mode: the ORM converts its text
        return _input_rows_orm(source, after), True
    inputs, params = _inputs_sql(source, "%s", [None if after is None else from_micros(after)])
    with connection.cursor() as cursor:
        cursor.cursor.execute(inputs, params)  # prepared, as in `_state_take`
        return _sliced([row[:10] for row in cursor.cursor.fetchall()])


def _inputs_sql(source: Source, after: str, after_params: list[Any]) -> tuple[str, list[Any]]:
    """The query of the inputs newer than `after` (an SQL expression of a time, or NULL
    for all of them), each kind read in its index's order up to `SLICE_INPUTS` rows, so
    a month of history is never sorted whole; before them, the fills of the 5 minutes up
    to `after`, folded already (kind _RECENT: what `trades_last_5m` counts on from there).

    Rows: (time in microseconds, kind, trade id, symbol, side, quantity, price, pnl, fee,
    equity value, and three columns the head row of `_state_take` uses).
    """
    trades, samples = Trade._meta.db_table, MetricSample._meta.db_table
    # -infinity without a ledger: everything is newer; nothing was folded before it.
    after = f"{after}::timestamptz"
    newer = f"ts > COALESCE({after}, '-infinity')"
    rest = "NULL::text, NULL::timestamptz, NULL::text"
    sql = (
        f"(SELECT {_MICROS}, {_FILL}, id, symbol, side, quantity, price, pnl, fee, "
        f"NULL::float8, {rest} FROM {trades} WHERE source_id = %s AND {newer} "
        "ORDER BY ts, id LIMIT %s) "
        f"UNION ALL (SELECT {_MICROS}, {_EQUITY}, 0, NULL, NULL, NULL, NULL, NULL, NULL, "
        f"value, {rest} FROM {samples} WHERE series_id = ("
        f"SELECT id FROM {MetricSeries._meta.db_table} "
        f"WHERE source_id = %s AND name = %s AND labels_key = %s) AND {newer} "
        "ORDER BY ts LIMIT %s) "
        f"UNION ALL (SELECT {_MICROS}, {_RECENT}, id, NULL, NULL, NULL, NULL, NULL, NULL, "
        f"NULL, {rest} FROM {trades} WHERE source_id = %s AND ts <= {after} "
        f"AND ts > {after} - %s) "
        "ORDER BY 1, 2, 3"
    )
    params = [
        source.pk, *after_params, SLICE_INPUTS,
        source.pk, EQUITY_METRIC, EMPTY_LABELS_KEY, *after_params, SLICE_INPUTS,
        source.pk, *after_params, *after_params, trading.RECENT_TRADES_WINDOW,
    ]  # fmt: skip
    return sql, params


def _sliced(rows: list[_Row]) -> tuple[list[_Row], bool]:
    """`rows` (at most a slice of each kind) cut where both kinds are certainly whole, and
    whether nothing was cut: where one kind reached `SLICE_INPUTS`, only the instants
    before its last one are known to be complete for both; the rest waits for the next
    slice."""
    cut = [
        max(row[0] for row in rows if row[1] == kind)
        for kind in (_FILL, _EQUITY)
        if sum(1 for row in rows if row[1] == kind) >= SLICE_INPUTS
    ]
    if not cut:
        return rows, True
    before = min(cut)
    kept = [row for row in rows if row[0] < before]
    # (An instant holding a whole slice of fills alone is folded whole rather than never.)
    return kept or [row for row in rows if row[0] <= before], False


def _input_rows_orm(source: Source, after: int | None) -> list[_Row]:
    recent: list[_Row] = []
    if after is not None:
        window = trading.RECENT_TRADES_WINDOW // timedelta(microseconds=1)
        recent = [
            (micros(ts), _RECENT, pk, None, None, None, None, None, None, None)
            for ts, pk in Trade.objects.filter(
                source=source, ts__gt=from_micros(after - window), ts__lte=from_micros(after)
            ).values_list("ts", "id")
        ]
    trades = Trade.objects.filter(source=source)
    samples = MetricSample.objects.filter(
        series__source=source, series__name=EQUITY_METRIC, series__labels_key=EMPTY_LABELS_KEY
    )
    if after is not None:
        trades = trades.filter(ts__gt=from_micros(after))
        samples = samples.filter(ts__gt=from_micros(after))
    fills = [
        (micros(ts), _FILL, pk, symbol, side, quantity, price, pnl, fee, None)
        for ts, pk, symbol, side, quantity, price, pnl, fee in trades.values_list(
            "ts", "id", "symbol", "side", "quantity", "price", "pnl", "fee"
        )
    ]
    equity = [
        (micros(ts), _EQUITY, 0, None, None, None, None, None, None, value)
        for ts, value in samples.values_list("ts", "value")
    ]
    return sorted(chain(recent, fills, equity), key=lambda row: (row[0], row[1], row[2]))


# --- writing ---------------------------------------------------------------------------


def _returns_update(source: Source, ledger: Ledger, now: datetime, *, force: bool) -> None:
    """Recompute Sharpe and Sortino when a grid time passed since they were (or `force`)."""
    if ledger.first_equity_at is None or ledger.equity is None:
        return
    current = micros(now) // _PERIOD * _PERIOD
    if ledger.returns_at == current and not force:
        return
    ledger.returns_at = current
    grid = grid_times(from_micros(ledger.first_equity_at), now)
    if len(grid) < 3:  # two returns at least
        ledger.sharpe = ledger.sortino = None
        return
    as_of = from_micros(cast(int, ledger.as_of))
    known = list(
        DerivedCheckpoint.objects.filter(source=source, at__lte=grid[0])
        .order_by("-at")
        .values_list("at", "equity")[:1]
    )
    known += list(
        DerivedCheckpoint.objects.filter(source=source, at__gt=grid[0], at__lte=grid[-1])
        .order_by("at")
        .values_list("at", "equity")
    )
    values: list[float] = []
    index = -1
    for moment in grid:
        value: float | None
        if moment >= as_of:
            value = ledger.equity
        else:
            while index + 1 < len(known) and known[index + 1][0] <= moment:
                index += 1
            value = known[index][1] if index >= 0 else None
        if value is not None:
            values.append(value)
    ledger.sharpe, ledger.sortino = returns_ratios(values)


def _derived_samples_delete(source: Source, *, after: datetime) -> None:
    """Drop the derived samples a restart is about to write again."""
    series = list(
        MetricSeries.objects.filter(
            source=source, name__in=DERIVED_NAMES, labels_key=EMPTY_LABELS_KEY
        ).values_list("id", flat=True)
    )
    if not series:
        return
    MetricSample.objects.filter(series_id__in=series, ts__gt=after).delete()
    # The latest value goes back to the newest sample left, or to none: the fold writes
    # every metric it still defines again, but one a late input made undefined (Sharpe
    # with no deviation left) must not stay the latest as of the newest input, where
    # rules and the snapshot would keep reading it.
    newest = MetricSample.objects.filter(series_id=OuterRef("pk")).order_by("-ts")
    MetricSeries.objects.filter(id__in=series, last_ts__gt=after).update(
        last_ts=Subquery(newest.values("ts")[:1]), last_value=Subquery(newest.values("value")[:1])
    )
