"""Samples, trades and events partitioned by time: writes never fail, partitions are made
ahead once, retention drops whole partitions and keeps one partly inside the window."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from metrics.ingest import event_ingest, metric_ingest, trade_ingest
from metrics.models import Event, MetricSample, Source, Trade, TradeId
from metrics.partitions import (
    EVENTS,
    PARTITIONED,
    SAMPLES,
    TRADES,
    PartitionedTable,
    partitions_ensure,
    partitions_of,
)
from metrics.retention import samples_prune
from metrics.tasks import ensure_partitions
from metrics.validation import EventIn, Sample, TradeIn
from monitoring_site.management.commands.retention import table_size
from monitoring_site.schedule import PERIODIC_WORK
from tests.processes import BASE_DIR, process_environment

DAY = timedelta(days=1)
# Far from any partition the migration or beat made: only the default partition covers it.
FAR = datetime(2031, 6, 10, 12, tzinfo=UTC)


def where(table: str) -> list[str]:
    """The partition holding each of `table`'s rows, in time order."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} ORDER BY ts")  # noqa: S608
        return [name for (name,) in cursor.fetchall()]


def samples(at: datetime, count: int, name: str = "x") -> list[Sample]:
    return [Sample(name, {}, "{}", at + timedelta(seconds=i), float(i)) for i in range(count)]


@pytest.mark.django_db
def test_it_stores_the_three_tables_partitioned_by_time() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_get_partkeydef(oid) FROM pg_class WHERE relkind = 'p' "
            "AND relname IN ('metrics_metricsample', 'metrics_trade', 'metrics_event')"
        )
        keys = dict(cursor.fetchall())
    assert keys == {table.table: "RANGE (ts)" for table in PARTITIONED}
    today = timezone.now()
    for table in PARTITIONED:
        starts = {partition.start for partition in partitions_of(table.table)}
        # Made by the migration: the current period and the next ones are there already.
        assert table.period_start(today) in starts
        assert table.period_start(today + 2 * DAY) in starts
    widths = {p.end - p.start for p in partitions_of(SAMPLES.table)}
    assert widths == {DAY}
    assert {p.end - p.start for p in partitions_of(EVENTS.table)} == {7 * DAY}
    assert all(p.start.weekday() == 0 for p in partitions_of(TRADES.table))  # Mondays


@pytest.mark.django_db
def test_a_write_for_a_time_with_no_partition_is_stored_then_moved_into_its_own(
    source: Source,
) -> None:
    # A small batch (one upsert statement) and a large one (COPY), a trade and an event.
    metric_ingest(source=source, samples=samples(FAR, 3, "small"), evaluate=False)
    metric_ingest(source=source, samples=samples(FAR + DAY, 500, "large"), evaluate=False)
    stored = trade_ingest(source=source, trades=[
        TradeIn("far-1", "BTC/USDT", "buy", 1.0, 100.0, None, 0.0, FAR),
    ])  # fmt: skip
    event_ingest(source=source, events=[EventIn("error", "far", {}, FAR)])

    assert stored.accepted == 1
    assert set(where(SAMPLES.table)) == {SAMPLES.default}
    assert len(where(SAMPLES.table)) == 503
    assert where(TRADES.table) == [TRADES.default]
    assert where(EVENTS.table) == [EVENTS.default]

    ensured = partitions_ensure(now=FAR + DAY, oldest=FAR, ahead=timedelta(0))

    assert ensured.rows_moved == 503 + 1 + 1
    assert sorted(ensured.created) == sorted([
        SAMPLES.partition_name(SAMPLES.period_start(FAR)),
        SAMPLES.partition_name(SAMPLES.period_start(FAR + DAY)),
        TRADES.partition_name(TRADES.period_start(FAR)),
        EVENTS.partition_name(EVENTS.period_start(FAR)),
    ])  # fmt: skip
    assert where(SAMPLES.table) == (
        [SAMPLES.partition_name(SAMPLES.period_start(FAR))] * 3
        + [SAMPLES.partition_name(SAMPLES.period_start(FAR + DAY))] * 500
    )
    assert where(TRADES.table) == [TRADES.partition_name(TRADES.period_start(FAR))]
    assert where(EVENTS.table) == [EVENTS.partition_name(EVENTS.period_start(FAR))]
    # Nothing lost or changed on the way, and replays still upsert into the new partition.
    assert MetricSample.objects.filter(ts__gte=FAR + DAY).count() == 500
    metric_ingest(source=source, samples=samples(FAR, 3, "small"), evaluate=False)
    assert MetricSample.objects.filter(ts__lt=FAR + DAY).count() == 3
    again = trade_ingest(source=source, trades=[
        TradeIn("far-1", "BTC/USDT", "buy", 1.0, 100.0, None, 0.0, FAR + DAY),
    ])  # fmt: skip
    assert (again.accepted, again.duplicates) == (0, 1)
    assert Event.objects.get(message="far").ts == FAR


@pytest.mark.django_db
def test_a_trade_id_is_a_duplicate_whichever_partition_its_replay_falls_in(
    source: Source,
) -> None:
    now = timezone.now()
    first = trade_ingest(source=source, trades=[
        TradeIn("t-1", "BTC/USDT", "buy", 1.0, 100.0, 5.0, 0.1, now - 8 * DAY),
    ])  # fmt: skip
    # The replay says "now" (a client that sent no time): another week's partition.
    replay = trade_ingest(source=source, trades=[
        TradeIn("t-1", "BTC/USDT", "buy", 1.0, 100.0, 5.0, 0.1, now),
        TradeIn("t-2", "BTC/USDT", "sell", 1.0, 101.0, 1.0, 0.1, now),
    ])  # fmt: skip

    assert (first.accepted, replay.accepted, replay.duplicates) == (1, 1, 1)
    assert sorted(Trade.objects.values_list("trade_id", flat=True)) == ["t-1", "t-2"]
    assert TradeId.objects.count() == 2


@pytest.mark.django_db
def test_the_beat_task_makes_the_coming_days_partitions() -> None:
    [work] = [work for work in PERIODIC_WORK if work.task == "metrics.tasks.partitions_ensure"]
    assert work.every_seconds <= 6 * 3600  # several chances a day before a day is needed
    tomorrow = SAMPLES.period_start(timezone.now()) + DAY
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute(f"DROP TABLE {SAMPLES.partition_name(tomorrow)}")
    assert tomorrow not in {p.start for p in partitions_of(SAMPLES.table)}

    ensure_partitions()

    assert tomorrow in {p.start for p in partitions_of(SAMPLES.table)}


def _drop_partitions_from(start: datetime) -> None:
    with connection.cursor() as cursor:
        for table in PARTITIONED:
            for partition in partitions_of(table.table):
                if partition.start >= start:
                    cursor.execute(f"DROP TABLE {partition.name}")


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_make_each_partition_once() -> None:
    now, oldest = FAR + 20 * DAY, FAR + 10 * DAY
    start = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(slot: int) -> None:
        try:
            start.wait(10)
            results[slot] = partitions_ensure(now=now, oldest=oldest, ahead=3 * DAY)
        except Exception as exc:  # the test reports it below
            results[slot] = exc
        finally:
            connection.close()

    try:
        threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not [r for r in results if isinstance(r, BaseException)], results
        created = [name for result in results for name in result.created]
        wanted = [
            table.partition_name(period)
            for table in PARTITIONED
            for period in table.periods(oldest, now + 3 * DAY)
        ]
        assert sorted(created) == sorted(wanted)  # each made by one run, none twice
        assert [result.failed for result in results] == [[], []]  # none tried twice either
        for table in PARTITIONED:
            starts = [p.start for p in partitions_of(table.table) if p.start >= oldest - 7 * DAY]
            assert starts == list(table.periods(oldest, now + 3 * DAY))
    finally:
        _drop_partitions_from(FAR - 7 * DAY)


def _partition_starts(table: PartitionedTable) -> set[datetime]:
    return {partition.start for partition in partitions_of(table.table)}


@pytest.mark.django_db
def test_retention_drops_whole_partitions_and_keeps_one_partly_inside(
    source: Source, settings: Any
) -> None:
    settings.TRADEWATCH_METRIC_RETENTION_DAYS = 30
    now = FAR + 40 * DAY  # noon: the cutoff falls mid-day (and mid-week)
    cutoff = now - 30 * DAY
    straddling = SAMPLES.period_start(cutoff)
    gone = straddling - DAY
    partitions_ensure(now=now, oldest=gone - DAY, ahead=timedelta(0))
    metric_ingest(source=source, samples=[
        Sample("x", {}, "{}", gone + timedelta(hours=1), 1.0),
        Sample("x", {}, "{}", straddling + timedelta(hours=1), 2.0),  # before the cutoff
        Sample("x", {}, "{}", straddling + timedelta(hours=23), 3.0),  # after it
        Sample("x", {}, "{}", now, 4.0),
    ], evaluate=False)  # fmt: skip
    # Caught by the default partition, older than the cutoff: deleted row by row.
    metric_ingest(source=source, samples=samples(FAR - 400 * DAY, 2), evaluate=False)
    trade_ingest(source=source, trades=[
        TradeIn("old", "S", "buy", 1.0, 1.0, None, 0.0, TRADES.period_start(cutoff) - DAY),
        TradeIn("straddling", "S", "buy", 1.0, 1.0, None, 0.0, cutoff - DAY / 2),
    ])  # fmt: skip

    counts = samples_prune(now=now)

    assert gone not in _partition_starts(SAMPLES)
    assert straddling in _partition_starts(SAMPLES)  # partly inside: waits
    assert sorted(MetricSample.objects.filter(series__source=source).values_list(
        "value", flat=True
    )) == [2.0, 3.0, 4.0]  # fmt: skip
    assert counts["samples"] == 2  # the default partition's, in chunks
    assert counts["partitions_dropped"] >= 2  # the gone day's samples, the old trades' week
    assert list(Trade.objects.values_list("trade_id", flat=True)) == ["straddling"]
    # The id of a trade still stored is kept; that of a dropped one goes with it.
    assert list(TradeId.objects.values_list("trade_id", flat=True)) == ["straddling"]


EMBEDDED_CHECK = """
import json
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from metrics.ingest import metric_ingest, trade_ingest
from metrics.models import MetricSample, Source, Trade
from metrics.retention import samples_prune
from metrics.tasks import ensure_partitions
from metrics.validation import Sample, TradeIn

now = timezone.now()
source = Source.objects.create(name="embedded-bot")
metric_ingest(source=source, samples=[
    Sample("x", {}, "{}", now - timedelta(days=40), 1.0), Sample("x", {}, "{}", now, 2.0),
], evaluate=False)
trade = TradeIn("t-1", "S", "buy", 1.0, 1.0, None, 0.0, now)
first = trade_ingest(source=source, trades=[trade])
again = trade_ingest(source=source, trades=[trade])
ensure_partitions()  # nothing to do on plain tables
counts = samples_prune(now=now)
with connection.cursor() as cursor:
    cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE 'metrics_metricsample%'")
    tables = sorted(name for (name,) in cursor.fetchall())
print(json.dumps({
    "vendor": connection.vendor, "accepted": [first.accepted, again.accepted],
    "samples": list(MetricSample.objects.values_list("value", flat=True)),
    "pruned": counts["samples"], "tables": tables, "trades": Trade.objects.count(),
}))
"""


@pytest.mark.slow
def test_the_embedded_sqlite_mode_keeps_plain_tables(tmp_path: Path) -> None:
    env = process_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    for command in (["migrate", "--verbosity", "0"], ["shell", "-c", EMBEDDED_CHECK]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen == {
        "vendor": "sqlite", "accepted": [1, 0], "samples": [2.0], "pruned": 1,
        "tables": ["metrics_metricsample"], "trades": 1,
    }  # fmt: skip


@pytest.mark.django_db
def test_pruning_by_hand_drops_the_expired_days_and_counts_their_rows(
    source: Source, capsys: pytest.CaptureFixture[str]
) -> None:
    now = timezone.now()
    partitions_ensure(now=now, oldest=now - 45 * DAY, ahead=timedelta(0))
    metric_ingest(source=source, samples=samples(now - 44 * DAY, 4), evaluate=False)
    metric_ingest(source=source, samples=samples(now - DAY, 1), evaluate=False)

    call_command("retention", "prune", "--only", "metric samples")

    assert "deleted 4 metric samples" in capsys.readouterr().out
    # Sizes add up the partitions (the partitioned table itself holds nothing).
    _, samples_size = table_size(MetricSample)
    _, sources_size = table_size(Source)
    assert samples_size is not None
    assert samples_size > 16384
    assert sources_size is not None
    assert sources_size > 0  # and a plain table is its own size
    assert SAMPLES.period_start(now - 44 * DAY) not in _partition_starts(SAMPLES)
    assert MetricSample.objects.count() == 1
