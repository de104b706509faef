"""Retention of metrics: samples, trades and events past their age, with stale
idempotency records, trade ids and derivation checkpoints.

On PostgreSQL samples, trades and events are partitioned by time (`metrics.partitions`):
a partition wholly past the retention is dropped (seconds, whatever its size, and no
dead rows for vacuum); one straddling the cutoff waits until it is wholly past. Rows the
default partition caught, and the plain tables of the embedded SQLite mode, are deleted
in chunks (`core.chunks`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model
from django.utils import timezone

from core.chunks import Progress, delete_older_than, delete_older_than_in

from .models import (
    DerivedCheckpoint,
    Event,
    IdempotentRequest,
    MetricSample,
    Trade,
    TradeId,
)
from .partitions import TRADES, is_partitioned, partitions_drop


def metric_cutoff(now: datetime | None = None) -> datetime:
    """Samples, trades and events older than this are past the metric retention."""
    return (now or timezone.now()) - timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS)


def metric_rows_prune(
    model: type[Model], cutoff: datetime, *, progress: Progress | None = None
) -> tuple[int, list[str]]:
    """Prune `model`'s rows before `cutoff`: drop its partitions wholly before it and
    delete, in chunks, what its default partition (or its plain table) holds before it.
    Return the rows deleted one by one and the partitions dropped."""
    table = model._meta.db_table
    if not is_partitioned(table):
        return delete_older_than(model, "ts", cutoff, progress=progress), []
    dropped = partitions_drop(table, cutoff)
    deleted = delete_older_than_in(f"{table}_default", "ts", cutoff, progress=progress)
    return deleted, dropped


def samples_prune(
    *, now: datetime | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """Prune samples, trades and events past the metric retention, stale idempotency
    records, trade ids and derivation checkpoints; return how many rows of each went
    one by one, and how many partitions were dropped whole."""
    now = now or timezone.now()
    cutoff = metric_cutoff(now)
    counts: dict[str, int] = {}
    dropped = 0
    for label, model in (("samples", MetricSample), ("trades", Trade), ("events", Event)):
        deleted, partitions = metric_rows_prune(model, cutoff, progress=progress)
        counts[label] = deleted
        dropped += len(partitions)
    # A trade id goes once its trade may have: with its partition when trades are
    # partitioned (the one straddling the cutoff still holds trades), else at the cutoff.
    ids_cutoff = TRADES.period_start(cutoff) if is_partitioned(TRADES.table) else cutoff
    counts["trade_ids"] = delete_older_than(TradeId, "ts", ids_cutoff, progress=progress)
    counts["idempotency_records"] = delete_older_than(
        IdempotentRequest,
        "created_at",
        now - timedelta(hours=settings.TRADEWATCH_IDEMPOTENCY_HOURS),
        progress=progress,
    )
    # A day past the samples: a late sample at the retention's edge still finds a
    # checkpoint before it to fold again from.
    counts["derived_checkpoints"] = delete_older_than(
        DerivedCheckpoint, "at", cutoff - timedelta(days=1), progress=progress
    )
    counts["partitions_dropped"] = dropped
    return counts
