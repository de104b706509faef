"""Retention of a month of samples: dropping a day's partition against chunked deletes.

Creates a throw-away database and fills two tables with the same 30 days x 2 M samples
(1,000 series of one source, each sampled evenly through the day), written by the
server itself (`INSERT ... SELECT generate_series`):
- `metrics_metricsample`, partitioned by day as Tradewatch stores samples now;
- a plain table of the same columns, key and BRIN index, as samples were stored before.

Then, in the same run:
- reads: `metric_query` of one series over the last hour (raw) and the last 7 days
  (hourly averages), the median of several runs, on each table;
- prune one day: retention drops the oldest day's partition (`metric_rows_prune`), and
  the chunked delete (`core.chunks`, 10,000 rows a statement) takes the same day's rows
  out of the plain table; with each table's size before and after, and the VACUUM the
  chunked delete leaves to do (the partition drop leaves none).

    .venv/bin/python -m bench.retention [--days 30] [--samples-per-day 2000000]

Last line: {"prune_day_s": .., "chunked_delete_day_s": .., "query_7d_ms": .., ...}.
Goal: prune_day_s < 1, no table bloat, reads no slower than on the plain table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from bench._support import create_database, drop_database, postgres_conninfo, say

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")
PLAIN = "bench_plain_metricsample"
QUERY_RUNS = 51


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--samples-per-day", type=int, default=2_000_000)
    parser.add_argument("--series", type=int, default=1_000)
    args = parser.parse_args()

    name = f"tradewatch_bench_retention_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    try:
        result = run(days=args.days, per_day=args.samples_per_day, series=args.series)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def _fill(table: str, series_ids: list[int], day: datetime, per_series: int) -> None:
    """A day of samples of every series, in time order (as they arrive), into `table`."""
    from django.db import connection

    step_us = 86_400_000_000 // per_series
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (series_id, ts, value) "  # noqa: S608
            "SELECT s.id, %s + n::int8 * %s::int8 * interval '1 microsecond', "
            "(n %% 1000) + s.id * 0.001 "
            "FROM generate_series(0, %s - 1) AS n, unnest(%s::int8[]) AS s(id)",
            [day, step_us, per_series, series_ids],
        )


def _size(table: str) -> int:
    """Bytes of `table` with its indexes (and its partitions, if it has any)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM pg_class "
            "WHERE oid = %s::regclass OR oid IN (SELECT relid FROM pg_partition_tree(%s))",
            [table, table],
        )
        return int(cursor.fetchone()[0])


@contextmanager
def _samples_in(table: str) -> Iterator[None]:
    """Send the sample table's statements to another table (the plain one): the same
    query code, the same SQL, only the table's name changed."""
    from django.db import connection

    from metrics.models import MetricSample

    quoted = f'"{MetricSample._meta.db_table}"'

    def rename(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        return execute(sql.replace(quoted, f'"{table}"'), params, many, context)

    with connection.execute_wrapper(rename):
        yield


def _time_ms(call: Callable[[], object], table: str, runs: list[float]) -> None:
    """Time one call of `call` on `table` into `runs` (milliseconds)."""
    with _samples_in(table):
        started = time.perf_counter()
        call()
        runs.append((time.perf_counter() - started) * 1000)


def run(*, days: int, per_day: int, series: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from core.chunks import delete_older_than_in
    from metrics.models import MetricSample, MetricSeries, Source
    from metrics.partitions import SAMPLES, partitions_drop, partitions_ensure
    from metrics.queries import metric_query
    from metrics.retention import metric_rows_prune

    call_command("migrate", verbosity=0)
    table = MetricSample._meta.db_table
    now = timezone.now()
    today = SAMPLES.period_start(now)
    first_day = today - timedelta(days=days - 1)
    partitions_ensure(now=now, oldest=first_day)
    with connection.cursor() as cursor:
        # The table as it was before partitioning: same columns, key and BRIN index.
        cursor.execute(f"CREATE TABLE {PLAIN} (LIKE {table} INCLUDING DEFAULTS)")
        cursor.execute(f"ALTER TABLE {PLAIN} ADD PRIMARY KEY (series_id, ts)")
        cursor.execute(
            f"CREATE INDEX {PLAIN}_ts_brin ON {PLAIN} USING brin (ts) WITH (autosummarize = on)"
        )
    source = Source.objects.create(name="bench-bot")
    MetricSeries.objects.bulk_create(
        [MetricSeries(source=source, name=f"metric_{i}", labels_key="{}") for i in range(series)]
    )
    series_ids = list(MetricSeries.objects.order_by("pk").values_list("pk", flat=True))
    per_series = max(1, per_day // series)
    say(f"filling {days} days x {per_series * series:,} samples into both tables")
    loading = time.perf_counter()
    for k in range(days):
        day = first_day + timedelta(days=k)
        for into in (table, PLAIN):
            _fill(into, series_ids, day, per_series)
        say(f"day {k + 1}/{days} ({day:%Y-%m-%d}) loaded, {time.perf_counter() - loading:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"VACUUM ANALYZE {PLAIN}")
    say(f"loaded and vacuumed in {time.perf_counter() - loading:.0f} s")

    def query(hours: int, step: timedelta | None) -> Callable[[], object]:
        return lambda: metric_query(
            source=source, name="metric_0", labels={}, start=now - timedelta(hours=hours),
            end=now, step=step, aggregation="avg",
        )  # fmt: skip

    # Each query on one table then the other, again and again: whatever else the machine
    # does meanwhile weighs on both alike.
    times: dict[str, list[float]] = {}
    for _ in range(QUERY_RUNS + 1):  # the first of each is a warm-up
        for label, call in (("1h", query(1, None)), ("7d", query(24 * 7, timedelta(hours=1)))):
            for suffix, where in (("", table), ("_plain", PLAIN)):
                _time_ms(call, where, times.setdefault(f"query_{label}_ms{suffix}", []))
    reads = {key: round(statistics.median(runs[1:]), 2) for key, runs in times.items()}
    say(f"reads (median of {QUERY_RUNS}): {reads}")

    # Partitions before the data (made empty by the migration) go first, untimed.
    partitions_drop(table, first_day)
    cutoff = first_day + timedelta(days=1)
    sizes_before = {"partitioned": _size(table), "plain": _size(PLAIN)}
    started = time.perf_counter()
    deleted_rows, dropped = metric_rows_prune(MetricSample, cutoff)
    prune_day_s = time.perf_counter() - started
    say(f"dropped {dropped} (+{deleted_rows} rows one by one) in {prune_day_s:.3f} s")
    started = time.perf_counter()
    chunked = delete_older_than_in(PLAIN, "ts", cutoff)
    chunked_delete_day_s = time.perf_counter() - started
    say(f"chunked delete of {chunked:,} rows in {chunked_delete_day_s:.1f} s")
    sizes_after = {"partitioned": _size(table), "plain": _size(PLAIN)}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {PLAIN}")
    vacuum_s = time.perf_counter() - started
    say(f"VACUUM after the chunked delete: {vacuum_s:.1f} s")
    mib = 1024 * 1024
    return {
        "prune_day_s": round(prune_day_s, 3),
        "chunked_delete_day_s": round(chunked_delete_day_s, 2),
        "query_7d_ms": reads["query_7d_ms"],
        "query_7d_ms_plain": reads["query_7d_ms_plain"],
        "query_1h_ms": reads["query_1h_ms"],
        "query_1h_ms_plain": reads["query_1h_ms_plain"],
        "vacuum_after_chunked_delete_s": round(vacuum_s, 2),
        "rows_per_day": per_series * series,
        "days": days,
        "partitioned_mib_before_after": [
            round(sizes_before["partitioned"] / mib), round(sizes_after["partitioned"] / mib),
        ],
        "plain_mib_before_after": [
            round(sizes_before["plain"] / mib), round(sizes_after["plain"] / mib),
        ],
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
