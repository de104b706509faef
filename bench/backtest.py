"""Rule backtest: one rule over 30 days of one source's 1 s samples (2.6 M samples).

Creates a throw-away database, one source whose `drawdown_pct` was reported every
second for 30 days (calm, a daily swing, and a few excursions a day through both
thresholds), loaded with a binary COPY, and a two-tier rule on its 5-minute average
with clear values and a `for` of one minute. Then times `backtest_run` of that rule
over the whole month on this one process: reading the samples, every instant the live
engine would have evaluated (each arrival and beat's ticks), the alerts and the
notifications of the enabled policy.

    .venv/bin/python -m bench.backtest [--days 30] [--exchange XNYS]

`--exchange`: the rule is judged only in that exchange's sessions (a schedule from the
`exchange-calendars` package, read in the timed run as a fresh worker would).

Last line: {"seconds": .., "samples": ..}. Goal: seconds < 5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

from bench._support import create_database, drop_database, postgres_conninfo

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--exchange", default="", help="judge only in its sessions (XNYS...)")
    args = parser.parse_args()

    name = f"tradewatch_bench_backtest_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    try:
        result = run(args.days, args.exchange)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def _copy_rows(series_id: int, start_us: int, values: Any) -> bytes:
    """Binary COPY rows (series_id int8, ts timestamptz, value float8), one a second."""
    import numpy as np

    pg_epoch_us = 946_684_800 * 1_000_000
    row = np.dtype(
        [("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("ts_len", ">i4"), ("ts", ">i8"),
         ("value_len", ">i4"), ("value", ">f8")]
    )  # fmt: skip
    rows = np.empty(len(values), dtype=row)
    rows["fields"], rows["id_len"], rows["ts_len"], rows["value_len"] = 3, 8, 8, 8
    rows["id"] = series_id
    rows["ts"] = start_us - pg_epoch_us + np.arange(len(values), dtype=np.int64) * 1_000_000
    rows["value"] = values
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    return header + rows.tobytes() + b"\xff\xff"


def _drawdown(seconds: int) -> Any:
    """A month of drawdown_pct: calm with a daily swing and noise, and a few excursions a
    day (some through WARNING only, some into CRITICAL)."""
    import numpy as np

    rng = np.random.default_rng(7)
    t = np.arange(seconds, dtype=np.float64)
    values = 5.0 + 2.0 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0.0, 0.6, seconds)
    for start in rng.integers(0, seconds - 3_600, size=max(1, seconds // 86_400 * 4)):
        height = rng.choice([9.0, 14.0])
        length = int(rng.integers(300, 1_800))
        ramp = np.minimum(1.0, np.arange(length) / 120.0)
        values[start : start + length] += height * ramp
    return np.round(values, 3)


def run(days: int, exchange: str = "") -> dict[str, Any]:
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from alerts.backtest import BacktestRequest, backtest_run
    from alerts.backtest.data import micros
    from alerts.models import Channel, Policy, Rule, Threshold
    from metrics.models import MetricSample, MetricSeries, Schedule, Source
    from metrics.schedules import schedule_create

    call_command("migrate", verbosity=0)
    Rule.objects.all().delete()  # the trading pack: only the rule under test
    source = Source.objects.create(name="bot-month")
    seconds = days * 86_400
    end = timezone.now().replace(microsecond=0) - timedelta(minutes=1)
    start = end - timedelta(seconds=seconds)
    series = MetricSeries.objects.create(source=source, name="drawdown_pct", labels_key="{}")
    values = _drawdown(seconds)
    loading = time.perf_counter()
    data = _copy_rows(series.pk, micros(start + timedelta(seconds=1)), values)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {MetricSample._meta.db_table} (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(data)
    MetricSeries.objects.filter(pk=series.pk).update(last_ts=end, last_value=float(values[-1]))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"{len(values):,} samples loaded in {time.perf_counter() - loading:.1f} s", flush=True)

    rule = Rule.objects.create(
        name="Drawdown (5 min average)", metric="drawdown_pct", aggregation="avg",
        window=timedelta(minutes=5), for_duration=timedelta(minutes=1),
        schedule=schedule_create(name=exchange, kind=Schedule.Kind.EXCHANGE, exchange=exchange)
        if exchange
        else None,
    )  # fmt: skip
    Threshold.objects.create(rule=rule, severity=30, comparison=">", value=12, clear_value=10)
    Threshold.objects.create(rule=rule, severity=50, comparison=">", value=16, clear_value=14)
    channel = Channel.objects.create(name="ops-console", kind=Channel.Kind.CONSOLE)
    Policy.objects.create(name="everything").channels.set([channel])

    request = BacktestRequest(rule_id=rule.pk, start=start, end=end, source_ids=(source.pk,))
    started = time.perf_counter()
    answer = backtest_run(request)
    elapsed = time.perf_counter() - started
    [current] = answer["runs"]
    print(
        f"{answer['cadence']['instants']:,} instants, {current['summary']['judged']:,} judged, "
        f"{current['summary']['alerts']} alerts, {current['summary']['notifications']} "
        f"notifications",
        flush=True,
    )
    return {"seconds": round(elapsed, 2), "samples": answer["samples"]}


if __name__ == "__main__":
    sys.exit(main())
