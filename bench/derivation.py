"""Derived trading metrics: the cost of one equity batch after 1 day vs 30 days of history.

Creates a throw-away database with two bots that reported equity every second (one for
a day, 86,400 samples, one for 30 days, 2.6 M samples) and a fill a minute, builds
their derived state once (the full fold, as after an upgrade), then times what the
worker runs for each new batch of 10 seconds of equity (`trading_metrics_derive`),
alternating the two bots. A late batch (one that lands before the newest input and
restarts the fold from a checkpoint) is timed apart.

    .venv/bin/python -m bench.derivation [--batches 300]

Last line: {"p99_ms_1d": .., "p99_ms_30d": .., "ratio_30d_1d": .., ...}.
Goal: ratio_30d_1d <= 1.5 and p99_ms_30d < 5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from bench._support import create_database, drop_database, postgres_conninfo

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")
BATCH_SECONDS = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=300)
    args = parser.parse_args()

    name = f"tradewatch_bench_derive_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    try:
        result = run(args.batches)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def run(batches: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from metrics.derived import trading_metrics_derive
    from metrics.ingest import metric_ingest, trade_ingest
    from metrics.models import MetricSample, MetricSeries, Source
    from metrics.validation import Sample, TradeIn
    from monitoring_site.memory import collector_tune

    call_command("migrate", verbosity=0)
    end = timezone.now().replace(microsecond=0) - timedelta(hours=2)

    def bot(name: str, days: int) -> Source:
        source = Source.objects.create(name=name)
        # Through ingestion, so the series exists and a derivation request is left.
        metric_ingest(
            source=source,
            samples=[Sample("equity", {}, "{}", end - timedelta(days=days), 10_000.0)],
            evaluate=False,
        )
        series = MetricSeries.objects.get(source=source, name="equity")
        started = time.perf_counter()
        seconds = days * 86_400
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                f"COPY {MetricSample._meta.db_table} (series_id, ts, value) FROM STDIN"
            ) as copy,
        ):
            equity = 10_000.0
            first = end - timedelta(days=days)
            for second in range(1, seconds):
                # A slow sine-like drift with noise: drawdowns come and go.
                equity *= 1 + ((second * 7919) % 201 - 100) / 2_000_000
                copy.write_row((series.pk, first + timedelta(seconds=second), equity))
        trade_ingest(
            source=source,
            trades=[
                TradeIn(
                    f"t{minute}",
                    "BTC/USDT",
                    "buy" if minute % 2 else "sell",
                    0.01,
                    50_000.0,
                    None if minute % 2 else float(minute % 7 - 3),
                    0.05,
                    end - timedelta(days=days) + timedelta(minutes=minute, seconds=30),
                )
                for minute in range(days * 1440)
            ],
        )
        MetricSeries.objects.filter(pk=series.pk).update(last_ts=end, last_value=equity)
        print(f"{name}: {seconds:,} samples loaded in {time.perf_counter() - started:.1f} s",
              flush=True)  # fmt: skip
        return source

    day, month = bot("bot-1d", 1), bot("bot-30d", 30)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    full: dict[str, float] = {}
    for source in (day, month):
        started = time.perf_counter()
        inputs, derivation = 0, None
        while derivation is None or not derivation.complete:  # in slices, as the worker does
            derivation = trading_metrics_derive(source=source)
            inputs += derivation.inputs
        full[source.name] = time.perf_counter() - started
        print(f"{source.name}: full fold of {inputs:,} inputs in {full[source.name]:.1f} s",
              flush=True)  # fmt: skip

    # As in a worker process after fork (monitoring_site.memory): what is loaded by now
    # is left out of every garbage collection.
    collector_tune()
    heads = {day.pk: end, month.pk: end}
    value = {day.pk: 10_000.0, month.pk: 10_000.0}
    timings: dict[int, list[float]] = {day.pk: [], month.pk: []}

    def batch(source: Source, start: datetime) -> None:
        samples = []
        for k in range(BATCH_SECONDS):
            value[source.pk] *= 1 + ((k * 31) % 9 - 4) / 10_000
            samples.append(
                Sample("equity", {}, "{}", start + timedelta(seconds=k), value[source.pk])
            )
        metric_ingest(source=source, samples=samples, evaluate=False)

    for _ in range(batches):
        for source in (day, month):
            batch(source, heads[source.pk] + timedelta(seconds=1))
            heads[source.pk] += timedelta(seconds=BATCH_SECONDS)
            started = time.perf_counter()
            trading_metrics_derive(source=source)
            timings[source.pk].append((time.perf_counter() - started) * 1000)

    late: list[float] = []
    for k in range(20):
        # A batch from 20 minutes ago (a retry that lost the race): fold from a checkpoint.
        batch(month, heads[month.pk] - timedelta(minutes=20, seconds=k * 30))
        started = time.perf_counter()
        trading_metrics_derive(source=month)
        late.append((time.perf_counter() - started) * 1000)

    p99_day, p99_month = _percentile(timings[day.pk], 99), _percentile(timings[month.pk], 99)
    return {
        "p99_ms_1d": round(p99_day, 2),
        "p99_ms_30d": round(p99_month, 2),
        "ratio_30d_1d": round(p99_month / p99_day, 2),
        "p50_ms_1d": round(statistics.median(timings[day.pk]), 2),
        "p50_ms_30d": round(statistics.median(timings[month.pk]), 2),
        "max_ms_30d": round(max(timings[month.pk]), 2),
        "late_batch_p50_ms_30d": round(statistics.median(late), 1),
        "full_fold_s_30d": round(full[month.name], 1),
        "batches": batches,
    }


if __name__ == "__main__":
    sys.exit(main())
