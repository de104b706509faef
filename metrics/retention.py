"""Retention: delete what is past its age in small chunks, never in one long statement.

One DELETE of a month of samples would hold its locks and bloat WAL for minutes; a
loop of short transactions lets ingestion go on between chunks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from .models import Event, IdempotentRequest, MetricSample, Trade

CHUNK_ROWS = 10_000


def delete_older_than(
    model: type[Model], column: str, cutoff: datetime, *, chunk: int = CHUNK_ROWS
) -> int:
    """Delete rows of `model` whose `column` is before `cutoff`, `chunk` rows at a time."""
    table = model._meta.db_table
    # Row addresses (ctid / rowid) work for every table, composite keys included.
    row_id = "ctid" if connection.vendor == "postgresql" else "rowid"
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {row_id} IN "
                f"(SELECT {row_id} FROM {table} WHERE {column} < %s LIMIT %s)",
                [cutoff, chunk],
            )
            count = cursor.rowcount
        deleted += count
        if count < chunk:
            return deleted


def samples_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete samples, trades and events past the metric retention, and stale idempotency
    records; return how many rows of each went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS)
    return {
        "samples": delete_older_than(MetricSample, "ts", cutoff),
        "trades": delete_older_than(Trade, "ts", cutoff),
        "events": delete_older_than(Event, "ts", cutoff),
        "idempotency_records": delete_older_than(
            IdempotentRequest,
            "created_at",
            now - timedelta(hours=settings.TRADEWATCH_IDEMPOTENCY_HOURS),
        ),
    }
