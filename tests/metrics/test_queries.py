"""Metric reads: parameter parsing and bucket maths (pure), then the selectors on PostgreSQL."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.query_params import (
    ParamError,
    ParamErrors,
    labels_key,
    parse_aggregation,
    parse_labels,
    parse_metric_query,
    parse_step,
    parse_time,
)
from metrics import queries
from metrics.models import Event, Source, SourceHeartbeat, Trade
from tests.factories import SourceFactory, TagFactory, make_series

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a multiple of every step used below


# --- pure: parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T12:00:00Z", T0),
        ("2026-03-02T14:00:00+02:00", T0),
        # "+" in a URL query decodes to a space.
        ("2026-03-02T14:00:00 02:00", T0),
        ("2026-03-02T12:00:00.250000Z", T0 + timedelta(milliseconds=250)),
        (str(int(T0.timestamp())), T0),
        (f"{int(T0.timestamp())}.5", T0 + timedelta(milliseconds=500)),
    ],
)
def test_it_reads_iso_and_unix_times(text: str, expected: datetime) -> None:
    assert parse_time(text, "start") == expected
    assert parse_time(text, "start").tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-02T12:00:00", "needs a UTC offset"),
        ("yesterday", "must be ISO 8601"),
        ("", "must not be empty"),
        ("-5", "between 1970 and 9999"),
        ("99999999999999", "between 1970 and 9999"),
    ],
)
def test_it_refuses_bad_times_naming_the_parameter(text: str, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_time(text, "end")
    assert caught.value.field == "end"
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60", 60),
        ("60s", 60),
        ("1m", 60),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 1209600),
    ],
)
def test_it_reads_steps(text: str, seconds: int) -> None:
    assert parse_step(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "at least 1 second"),
        ("1.5", "whole seconds"),
        ("-60", "whole seconds"),
        ("5x", "whole seconds"),
        ("400d", "at most 366 days"),
    ],
)
def test_it_refuses_bad_steps(text: str, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_step(text)
    assert caught.value.field == "step"
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"symbol": "BTC/USDT", "venue": "binance"}', {"symbol": "BTC/USDT", "venue": "binance"}),
        ("symbol=BTC/USDT, venue=binance", {"symbol": "BTC/USDT", "venue": "binance"}),
        ("expr=a=b", {"expr": "a=b"}),
        ("", {}),
        ("{}", {}),
    ],
)
def test_it_reads_labels_as_json_or_pairs(text: str, expected: dict[str, str]) -> None:
    assert parse_labels(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "not valid JSON"),
        ('{"symbol": 1}', "must be a string"),
        ("symbol", "not of the form name=value"),
        ("a=1,a=2", "given twice"),
        ("1bad=x", "must match"),
        ('{"a-b": "x"}', "must match"),
    ],
)
def test_it_refuses_bad_labels(text: str, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_labels(text)
    assert caught.value.field == "labels"
    assert message in caught.value.message


def test_it_keys_labels_as_ingestion_does() -> None:
    assert labels_key({}) == "{}"
    assert labels_key({"venue": "binance", "symbol": "BTC/USDT"}) == (
        '{"symbol":"BTC/USDT","venue":"binance"}'
    )
    assert labels_key({"name": "é"}) == '{"name":"é"}'


def test_it_reads_aggregations_case_insensitively() -> None:
    assert parse_aggregation("MAX") == "max"
    with pytest.raises(ParamError, match="must be one of avg, min, max, last, sum, count"):
        parse_aggregation("median")


def test_it_defaults_to_the_last_hour_and_avg() -> None:
    params = parse_metric_query({"source": ["alpha"], "name": ["equity"]}, now=T0)
    assert (params.start, params.end) == (T0 - timedelta(hours=1), T0)
    assert (params.step, params.labels, params.aggregation) == (None, None, "avg")


def test_it_collects_every_bad_parameter_at_once() -> None:
    with pytest.raises(ParamErrors) as caught:
        parse_metric_query(
            {"name": ["a", "b"], "step": ["0"], "bogus": ["1"], "start": ["x"]}, now=T0
        )
    fields = sorted(error.field for error in caught.value.errors)
    assert fields == ["bogus", "name", "source", "start", "step"]


def test_it_refuses_a_start_after_the_end() -> None:
    with pytest.raises(ParamErrors) as caught:
        parse_metric_query(
            {"source": ["a"], "name": ["b"], "start": ["2026-03-02T13:00:00Z"]}, now=T0
        )
    assert [error.as_dict() for error in caught.value.errors] == [
        {"index": None, "field": "start", "message": "must not be after end"}
    ]


# --- pure: buckets ------------------------------------------------------------------------


def test_it_aligns_buckets_to_the_epoch() -> None:
    step = timedelta(minutes=5)
    index = queries.bucket_index(T0 + timedelta(minutes=7, seconds=59), step)
    assert queries.bucket_start(index, step) == T0 + timedelta(minutes=5)
    # A sample exactly on a boundary starts the bucket; a microsecond before ends the last.
    assert (
        queries.bucket_index(T0, step)
        == queries.bucket_index(T0 - timedelta(microseconds=1), step) + 1
    )
    assert queries.bucket_start(queries.bucket_index(T0, step), step) == T0


def test_it_counts_buckets_of_a_closed_range() -> None:
    minute = timedelta(minutes=1)
    assert queries.bucket_count(T0, T0 + timedelta(hours=1), minute) == 61
    assert queries.bucket_count(T0 + timedelta(seconds=30), T0 + timedelta(seconds=40), minute) == 1


def test_it_refuses_a_step_giving_too_many_buckets() -> None:
    queries.check_bucket_count(T0, T0 + timedelta(seconds=9_999), timedelta(seconds=1))
    with pytest.raises(ParamError) as caught:
        queries.check_bucket_count(T0, T0 + timedelta(days=7), timedelta(seconds=60))
    assert caught.value.field == "step"
    assert "10081 buckets" in caught.value.message
    assert "at least 61 seconds" in caught.value.message


def test_it_groups_rows_per_series_keeping_empty_ones() -> None:
    grouped = queries.group_rows(
        [(2, {"s": "b"}), (1, {"s": "a"})], [(1, T0, 1.0), (1, T0 + timedelta(1), 2.0)]
    )
    assert [(g.labels, g.points) for g in grouped] == [
        ({"s": "b"}, []),
        ({"s": "a"}, [(T0, 1.0), (T0 + timedelta(1), 2.0)]),
    ]


def test_it_calls_a_heartbeat_overdue_past_period_and_grace() -> None:
    minute = timedelta(minutes=1)
    assert not queries.heartbeat_overdue(age=2 * minute, period=minute, grace=minute)
    assert queries.heartbeat_overdue(
        age=2 * minute + timedelta(seconds=1), period=minute, grace=minute
    )


# --- database -----------------------------------------------------------------------------


# Irregular samples over 20 minutes, some exactly on 5-minute boundaries.
OFFSETS = [0, 1, 59, 299, 300, 301, 450, 600, 601, 899, 1190, 1200]
POINTS = [(T0 + timedelta(seconds=s), float(i * 3 % 7) - 2.5) for i, s in enumerate(OFFSETS)]

REFERENCE: dict[str, Callable[[list[tuple[datetime, float]]], float]] = {
    "avg": lambda pts: statistics.fmean(v for _, v in pts),
    "min": lambda pts: min(v for _, v in pts),
    "max": lambda pts: max(v for _, v in pts),
    "sum": lambda pts: sum(v for _, v in pts),
    "count": lambda pts: len(pts),
    "last": lambda pts: max(pts)[1],
}


def reference_buckets(
    points: Sequence[tuple[datetime, float]], step: timedelta, aggregation: str
) -> list[tuple[datetime, float]]:
    buckets: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for ts, value in points:
        buckets[queries.bucket_index(ts, step)].append((ts, value))
    return [
        (queries.bucket_start(index, step), REFERENCE[aggregation](pts))
        for index, pts in sorted(buckets.items())
    ]


def query(source: Source, **overrides: Any) -> queries.QueryResult:
    arguments: dict[str, Any] = {
        "source": source,
        "name": "drawdown_pct",
        "labels": {"symbol": "BTC/USDT"},
        "start": T0 - timedelta(hours=1),
        "end": T0 + timedelta(hours=1),
        "step": timedelta(minutes=5),
        "aggregation": "avg",
    }
    return queries.metric_query(**(arguments | overrides))


@pytest.mark.django_db
@pytest.mark.parametrize("aggregation", ["avg", "min", "max", "sum", "count", "last"])
def test_it_aggregates_buckets_in_sql_as_the_reference_does(
    source: Source, aggregation: str
) -> None:
    make_series(source, "drawdown_pct", {"symbol": "BTC/USDT"}, POINTS)
    make_series(source, "drawdown_pct", {"symbol": "ETH/USDT"}, [(T0, 99.0)])

    result = query(source, aggregation=aggregation)

    assert not result.truncated
    [series] = result.series
    assert series.labels == {"symbol": "BTC/USDT"}
    expected = reference_buckets(POINTS, timedelta(minutes=5), aggregation)
    assert [ts for ts, _ in series.points] == [ts for ts, _ in expected]
    assert [v for _, v in series.points] == pytest.approx([v for _, v in expected])
    assert len(series.points) == 5  # 12:00, :05, :10, :15, :20


@pytest.mark.django_db
def test_it_counts_only_samples_inside_the_range(source: Source) -> None:
    make_series(source, "drawdown_pct", {"symbol": "BTC/USDT"}, POINTS)

    result = query(
        source,
        start=T0 + timedelta(seconds=1),
        end=T0 + timedelta(seconds=300),
        aggregation="count",
    )

    # 12:00 bucket: samples at 1, 59, 299 s (0 s is before start); 12:05: only 300 s.
    assert result.series[0].points == [(T0, 3), (T0 + timedelta(minutes=5), 1)]


@pytest.mark.django_db
def test_it_returns_every_series_of_the_name_without_labels(source: Source) -> None:
    make_series(source, "drawdown_pct", {"symbol": "ETH/USDT"}, [(T0, 2.0)])
    make_series(source, "drawdown_pct", {"symbol": "BTC/USDT"}, [(T0, 1.0)])
    make_series(source, "drawdown_pct", {}, [(T0, 3.0)])
    make_series(source, "drawdown_pct", {"symbol": "SOL/USDT"}, [])
    make_series(source, "equity", {}, [(T0, 1000.0)])
    make_series(SourceFactory.create(), "drawdown_pct", {}, [(T0, 50.0)])

    everything = query(source, labels=None, step=None)
    unlabelled = query(source, labels={}, step=None)

    assert [(s.labels, [v for _, v in s.points]) for s in everything.series] == [
        ({"symbol": "BTC/USDT"}, [1.0]),
        ({"symbol": "ETH/USDT"}, [2.0]),
        ({"symbol": "SOL/USDT"}, []),
        ({}, [3.0]),
    ]
    assert [(s.labels, s.points) for s in unlabelled.series] == [({}, [(T0, 3.0)])]


@pytest.mark.django_db
def test_it_returns_nothing_for_an_unknown_metric(source: Source) -> None:
    assert query(source, name="nope") == queries.QueryResult(
        series=[], truncated=False, limit=queries.MAX_BUCKETED_POINTS
    )


@pytest.mark.django_db
def test_it_returns_raw_points_in_time_order(source: Source) -> None:
    make_series(source, "drawdown_pct", {"symbol": "BTC/USDT"}, list(reversed(POINTS)))

    result = query(source, step=None)

    assert result.series[0].points == POINTS
    assert (result.truncated, result.limit) == (False, queries.MAX_RAW_POINTS)


@pytest.mark.django_db
def test_it_truncates_raw_points_and_says_so(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "MAX_RAW_POINTS", 5)
    make_series(source, "drawdown_pct", {"symbol": "BTC/USDT"}, POINTS)

    result = query(source, step=None)

    assert result.truncated
    assert result.series[0].points == POINTS[:5]


@pytest.mark.django_db
def test_it_truncates_bucketed_points_and_says_so(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "MAX_BUCKETED_POINTS", 2)
    make_series(source, "drawdown_pct", {"symbol": "BTC/USDT"}, POINTS)

    result = query(source, aggregation="last")

    assert result.truncated
    assert [ts for ts, _ in result.series[0].points] == [T0, T0 + timedelta(minutes=5)]


@pytest.mark.django_db
def test_it_refuses_too_many_series(source: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "MAX_SERIES", 2)
    for symbol in ("A", "B", "C"):
        make_series(source, "drawdown_pct", {"symbol": symbol}, [])

    with pytest.raises(ParamError) as caught:
        query(source, labels=None)

    assert caught.value.field == "labels"
    assert "more than 2 series" in caught.value.message


@pytest.mark.django_db
def test_it_finds_a_source_by_id_or_name(source: Source) -> None:
    numbered = SourceFactory.create(name="12345")
    assert queries.source_find(str(source.pk)) == source
    assert queries.source_find("alpha-bot") == source
    assert queries.source_find("12345") == numbered
    assert queries.source_find("missing") is None


@pytest.mark.django_db
def test_it_snapshots_a_source(source: Source, django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    source.tags.set([TagFactory.create(name="live")])
    make_series(source, "drawdown_pct", {}, [(now - timedelta(seconds=5), 4.5)])
    make_series(source, "equity", {}, [(now - timedelta(seconds=5), 10_000.0)])
    make_series(source, "equity", {"account": "sub"}, [(now - timedelta(seconds=5), 50.0)])
    make_series(source, "latency_ms", {"venue": "binance"}, [(now - timedelta(seconds=9), 12.0)])
    SourceHeartbeat.objects.create(
        source=source,
        status="degraded",
        info={"version": "1.2"},
        last_seen=now - timedelta(seconds=30),
        first_seen=now - timedelta(hours=1),
        count=60,
    )
    for number in range(3):
        Trade.objects.create(
            source=source,
            trade_id=f"t-{number}",
            symbol="BTC/USDT",
            side="buy",
            quantity=0.1,
            price=50_000,
            ts=now - timedelta(minutes=10 - number),
        )
    for number in range(queries.SNAPSHOT_EVENTS + 2):
        Event.objects.create(
            source=source,
            type="error",
            message=f"e{number}",
            ts=now - timedelta(minutes=60 - number),
        )

    with django_assert_max_num_queries(5):
        snapshot = queries.source_snapshot(source=source, now=now)

    assert snapshot["source"] == {
        "id": source.pk,
        "name": "alpha-bot",
        "kind": "bot",
        "enabled": True,
        "tags": ["live"],
    }
    # Trading metrics (unlabelled, known names) in METRICS order; the rest as series.
    assert snapshot["trading"] == {
        "equity": {"value": 10_000.0, "ts": now - timedelta(seconds=5)},
        "drawdown_pct": {"value": 4.5, "ts": now - timedelta(seconds=5)},
    }
    assert snapshot["metrics"] == [
        {
            "name": "equity",
            "labels": {"account": "sub"},
            "value": 50.0,
            "ts": now - timedelta(seconds=5),
        },
        {
            "name": "latency_ms",
            "labels": {"venue": "binance"},
            "value": 12.0,
            "ts": now - timedelta(seconds=9),
        },
    ]
    assert snapshot["heartbeat"] == {
        "status": "degraded",
        "info": {"version": "1.2"},
        "last_seen": now - timedelta(seconds=30),
        "age_seconds": 30.0,
        "overdue": False,
        "market_closed": False,
    }
    assert snapshot["trades"] == {"count": 3, "last_ts": now - timedelta(minutes=8)}
    assert [event["message"] for event in snapshot["events"]] == [
        f"e{number}" for number in range(queries.SNAPSHOT_EVENTS + 1, 1, -1)
    ]
    assert set(snapshot["events"][0]) == {"type", "message", "ts"}


@pytest.mark.django_db
def test_it_snapshots_a_quiet_source(source: Source) -> None:
    now = timezone.now()

    snapshot = queries.source_snapshot(source=source, now=now)

    assert snapshot == {
        "source": {
            "id": source.pk,
            "name": "alpha-bot",
            "kind": "bot",
            "enabled": True,
            "tags": [],
        },
        "generated_at": now,
        "metrics": [],
        "trading": None,
        "heartbeat": None,
        "trades": {"count": 0, "last_ts": None},
        "events": [],
    }


@pytest.mark.django_db
def test_it_marks_a_late_heartbeat_overdue(source: Source) -> None:
    now = timezone.now()
    SourceHeartbeat.objects.create(
        source=source, last_seen=now - timedelta(minutes=5), first_seen=now - timedelta(hours=1)
    )

    heartbeat = queries.source_snapshot(source=source, now=now)["heartbeat"]

    assert heartbeat["overdue"] is True
    assert heartbeat["age_seconds"] == 300.0
