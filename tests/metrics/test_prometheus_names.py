"""The fixed mapping from Tradewatch's metric names to Prometheus families, and HELP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from metrics import prometheus
from metrics.prometheus_names import Exposed, documentation, exposed, family_name

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("metric", "family"),
    [
        ("drawdown_pct", "tradewatch_metric_drawdown_pct"),
        ("http.latency.p99", "tradewatch_metric_http_latency_p99"),
        ("job:errors:rate5m", "tradewatch_metric_job_errors_rate5m"),
        ("trades_last_5m", "tradewatch_metric_trades_last_5m"),
        # Endings of other types' series get `_value`.
        ("trade_count", "tradewatch_metric_trade_count_value"),
        ("orders_total", "tradewatch_metric_orders_total_value"),
        ("fees_sum", "tradewatch_metric_fees_sum_value"),
        ("latency_bucket", "tradewatch_metric_latency_bucket_value"),
        ("order_created", "tradewatch_metric_order_created_value"),
        ("build_info", "tradewatch_metric_build_info_value"),
        ("total", "tradewatch_metric_total_value"),
        # ... only at the end.
        ("count_of_orders", "tradewatch_metric_count_of_orders"),
        # A rate's unit divides: kept as sent.
        ("orders_per_s", "tradewatch_metric_orders_per_s"),
    ],
)
def test_it_names_families_after_the_metric(metric: str, family: str) -> None:
    assert family_name(metric) == family
    assert exposed(metric).scale == 1.0


@pytest.mark.parametrize(
    ("metric", "family", "scale", "sent_in"),
    [
        ("exchange_latency_ms", "tradewatch_metric_exchange_latency_seconds", 1e-3, "milliseconds"),
        ("tick.lag.us", "tradewatch_metric_tick_lag_seconds", 1e-6, "microseconds"),
        ("rtt_ns", "tradewatch_metric_rtt_seconds", 1e-9, "nanoseconds"),
        ("uptime_minutes", "tradewatch_metric_uptime_seconds", 60.0, "minutes"),
        ("holding_days", "tradewatch_metric_holding_seconds", 86400.0, "days"),
        ("cycle_sec", "tradewatch_metric_cycle_seconds", 1.0, ""),
        ("cycle_s", "tradewatch_metric_cycle_seconds", 1.0, ""),
        ("cycle_seconds", "tradewatch_metric_cycle_seconds", 1.0, ""),
    ],
)
def test_it_exposes_a_time_in_seconds(metric: str, family: str, scale: float, sent_in: str) -> None:
    assert exposed(metric) == Exposed(family, scale, sent_in)


def test_it_says_equity_is_reported_and_drawdown_derived() -> None:
    assert documentation("equity").startswith("Reported by the source: account equity")
    assert "Derived" not in documentation("equity")
    assert documentation("drawdown_pct") == (
        "Derived by Tradewatch from the source's trades and equity: current drawdown from "
        "the running peak, %. Latest per source (Tradewatch metric 'drawdown_pct')."
    )
    assert documentation("trade_count").endswith("(Tradewatch metric 'trade_count').")


def test_it_names_the_unit_the_source_sent() -> None:
    assert documentation("exchange_latency_ms") == (
        "Reported by the source: exchange round-trip time, in seconds. Latest per source "
        "and labels (Tradewatch metric 'exchange_latency_ms', sent in milliseconds)."
    )
    assert documentation("fill_lag_ms") == (
        "Latest value of each source's series, in seconds "
        "(Tradewatch metric 'fill_lag_ms', sent in milliseconds)."
    )


def test_it_converts_the_values_it_exposes_in_seconds() -> None:
    families = prometheus.source_metric_families(
        [
            ("exchange_latency_ms", {"venue": "kraken"}, "bot", 1250.0, T0),
            ("trade_count", {}, "bot", 12.0, T0),
        ]
    )

    assert [(f.name, [(s.name, s.labels, s.value) for s in f.samples]) for f in families] == [
        (
            "tradewatch_metric_exchange_latency_seconds",
            [
                (
                    "tradewatch_metric_exchange_latency_seconds",
                    {"source": "bot", "venue": "kraken"},
                    1.25,
                )
            ],
        ),
        (
            "tradewatch_metric_trade_count_value",
            [("tradewatch_metric_trade_count_value", {"source": "bot"}, 12.0)],
        ),
    ]
