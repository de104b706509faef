"""The upgrade to time-partitioned samples, trades and events keeps every row.

The schema is taken back to the migration before it (which turns the partitioned tables
back into plain ones, rows and all), filled as the old code left it, and migrated
forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from metrics.ingest import trade_ingest
from metrics.models import Event, MetricSample, Source, Trade, TradeId
from metrics.partitions import EVENTS, PARTITIONED, SAMPLES, TRADES
from metrics.validation import TradeIn

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("metrics", "0010_schedule_history_triggers")]
AFTER = [("metrics", "0011_time_partitions")]
INDEXES = {
    "metrics_metricsample": {"metrics_metricsample_pkey", "metric_sample_ts_brin"},
    "metrics_trade": {"metrics_trade_pkey", "trade_source_ts"},
    "metrics_event": {
        "metrics_event_pkey", "event_source_type_ts", "event_source_newest", "event_ts_brin",
    },
}  # fmt: skip


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_upgrade() -> Iterator[Any]:
    apps = migrate(BEFORE)
    try:
        yield apps
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def relkind(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        return str(cursor.fetchone()[0])


def index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {name for (name,) in cursor.fetchall()}


def foreign_keys(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        return [definition for (definition,) in cursor.fetchall()]


def test_it_keeps_every_row_when_the_tables_become_partitioned(before_upgrade: Any) -> None:
    apps = before_upgrade
    assert {relkind(table.table) for table in PARTITIONED} == {"r"}  # plain again
    OldSource = apps.get_model("metrics", "Source")
    OldSeries = apps.get_model("metrics", "MetricSeries")
    OldSample = apps.get_model("metrics", "MetricSample")
    OldTrade = apps.get_model("metrics", "Trade")
    OldEvent = apps.get_model("metrics", "Event")
    now = timezone.now().replace(microsecond=0)
    source = OldSource.objects.create(name="upgraded-bot")
    series = OldSeries.objects.create(source=source, name="equity", labels_key="{}")
    # Within the retention, long past it (the default partition's), and ahead of now.
    ages = [timedelta(hours=h) for h in (0, 1, 25, 24 * 10)] + [400 * timedelta(days=1)]
    times = [now - age for age in ages] + [now + timedelta(days=20)]
    OldSample.objects.bulk_create(
        [OldSample(series=series, ts=ts, value=float(i)) for i, ts in enumerate(times)]
    )
    trades = [
        OldTrade.objects.create(
            source=source,
            trade_id=f"t-{i}",
            symbol="BTC/USDT",
            side="buy",
            quantity=1,
            price=100 + i,
            pnl=i,
            fee=0.1,
            ts=ts,
        )
        for i, ts in enumerate(times)
    ]
    events = [
        OldEvent.objects.create(source=source, type="error", message=str(i), ts=ts)
        for i, ts in enumerate(times)
    ]
    OldEvent.objects.filter(pk=events[-1].pk).delete()  # the sequence is past the largest id
    kept_events = {(e.pk, e.message, e.ts) for e in events[:-1]}

    migrate(AFTER)

    assert {relkind(table.table) for table in PARTITIONED} == {"p"}
    assert sorted(MetricSample.objects.values_list("ts", "value")) == sorted(
        (ts, float(i)) for i, ts in enumerate(times)
    )
    assert sorted(Trade.objects.values_list("pk", "trade_id", "price", "ts")) == sorted(
        (t.pk, t.trade_id, t.price, t.ts) for t in trades
    )
    assert set(Event.objects.values_list("pk", "message", "ts")) == kept_events
    # Each row in its period's partition; the one past the retention in the default one.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ts, tableoid::regclass::text FROM {SAMPLES.table} ORDER BY ts"  # noqa: S608
        )
        homes = dict(cursor.fetchall())
    assert homes[now - 400 * timedelta(days=1)] == SAMPLES.default
    assert homes[now] == SAMPLES.partition_name(SAMPLES.period_start(now))
    assert homes[now + timedelta(days=20)] == SAMPLES.default
    # Indexes and foreign keys as they were, under the same names.
    for table, names in INDEXES.items():
        assert names <= index_names(table), table
    assert foreign_keys(TRADES.table)
    assert all("REFERENCES metrics_source(id)" in fk for fk in foreign_keys(EVENTS.table))
    # New rows get ids past every id used before (the deleted one's included).
    source_now = Source.objects.get(pk=source.pk)
    new_event = Event.objects.create(source=source_now, type="error", ts=now)
    assert new_event.pk > events[-1].pk
    # The stored trades' ids are known: a replay is a duplicate, a new id is stored.
    assert TradeId.objects.filter(source=source_now).count() == len(trades)
    stored = trade_ingest(source=source_now, trades=[
        TradeIn("t-0", "BTC/USDT", "buy", 1.0, 100.0, 0.0, 0.1, now),
        TradeIn("t-new", "BTC/USDT", "buy", 1.0, 100.0, 0.0, 0.1, now),
    ])  # fmt: skip
    assert (stored.accepted, stored.duplicates) == (1, 1)
    assert Trade.objects.get(trade_id="t-new").pk > max(t.pk for t in trades)
