"""Deleting many rows in small chunks, never in one long statement.

One DELETE of a month of samples would hold its locks and bloat WAL for minutes; a
loop of short transactions lets ingestion go on between chunks. Each chunk is claimed
with `FOR UPDATE SKIP LOCKED`, so two pruning runs at once (a second beat, a run by
hand during the scheduled one) share the work instead of queueing on each other's rows.
Every app's retention deletes through here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Model, QuerySet

CHUNK_ROWS = 10_000


#: Called after each chunk with the number of rows it deleted (a progress bar).
Progress = Callable[[int], object]


def delete_older_than(
    model: type[Model],
    column: str,
    cutoff: datetime,
    *,
    chunk: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> int:
    """Delete rows of `model` whose `column` is before `cutoff`, `chunk` rows at a time."""
    return delete_older_than_in(
        model._meta.db_table, column, cutoff, chunk=chunk, progress=progress
    )


def delete_older_than_in(
    table: str,
    column: str,
    cutoff: datetime,
    *,
    chunk: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> int:
    """Delete rows of the plain table `table` whose `column` is before `cutoff`, `chunk`
    rows at a time (one partition of a partitioned table, say)."""
    # Row addresses (ctid / rowid) work for every table, composite keys included.
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        _refuse_partitioned(table)
    row_id = "ctid" if postgresql else "rowid"
    # Rows another pruner holds are its to delete (SQLite has one writer at a time anyway).
    claim = " FOR UPDATE SKIP LOCKED" if postgresql else ""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {row_id} IN "
                f"(SELECT {row_id} FROM {table} WHERE {column} < %s LIMIT %s{claim})",
                [cutoff, chunk],
            )
            count: int = cursor.rowcount
        deleted += count
        if progress is not None and count:
            progress(count)
        if count < chunk:
            return deleted


def _refuse_partitioned(table: str) -> None:
    """A row address is unique only within one partition: deleting by address from a
    partitioned table would delete rows of other partitions at the same address."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    if row is not None and row[0] == "p":
        raise ValueError(f"{table} is partitioned: drop its partitions, or prune each one")


def delete_in_chunks(
    queryset: QuerySet[Model], *, chunk: int = 1000, progress: Progress | None = None
) -> int:
    """Delete the rows of `queryset` (with what cascades from them) `chunk` at a time.

    For tables whose rows own others (an alert's timeline and notifications): Django
    deletes the dependents first, each chunk in its own short transaction. Returns the
    number of rows of the queryset's own model deleted.
    """
    model = queryset.model
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                queryset.select_for_update(skip_locked=True)
                .order_by()
                .values_list("pk", flat=True)[:chunk]
            )
            if ids:
                _, by_model = model._default_manager.filter(pk__in=ids).delete()
                count = by_model.get(model._meta.label, 0)
            else:
                count = 0
        deleted += count
        if progress is not None and count:
            progress(count)
        if len(ids) < chunk:
            return deleted
