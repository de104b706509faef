"""`promtool check metrics` finds nothing to say about a live `/metrics`: every metric
the trading pack and the health score know, reported and derived, and Tradewatch's own."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.rulepacks.trading import pack_rules
from health import selectors
from health.selfmonitoring import self_check, worker_presence_record
from health.services import process_heartbeat_record
from metrics.derived import DERIVED_NAMES, trading_metrics_derive
from metrics.prometheus_names import DERIVED_METRICS, family_name
from metrics.reported import REPORTED_METRICS
from metrics.services import source_create
from tests.processes import broker_purge, free_port, process_environment, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
OWN_SERIES = {
    "tradewatch_ingested_items_total",
    "tradewatch_rejected_batches_total",
    "tradewatch_ingest_duration_seconds_bucket",
    "tradewatch_source_up",
    "tradewatch_source_heartbeat_age_seconds",
    "tradewatch_metric_watchdog",
    "tradewatch_metric_workers_alive",
    "tradewatch_metric_queue_backlog",
    "tradewatch_metric_beat_tick_age_seconds",
}


@pytest.fixture(autouse=True)
def _empty_queues() -> Iterator[None]:
    # The web process queues derivations and evaluations no worker here consumes.
    yield
    broker_purge()


def pack_metrics() -> set[str]:
    """Every metric the trading pack's rules and guards, and the health score, read."""
    rules = pack_rules()
    # The "alive but not trading" rules name signals (signal:...), made of events and
    # of the reported market_data_age_ms.
    watched = {
        rule.metric
        for rule in rules
        if rule.kind == "threshold" and not rule.metric.startswith("signal:")
    } | {"market_data_age_ms"}
    guards = {rule.extra["guard_metric"] for rule in rules if "guard_metric" in rule.extra}
    signals = {
        selectors.ERROR_RATE,
        selectors.CYCLES,
        selectors.CONSECUTIVE_ERRORS,
        selectors.OPEN_POSITIONS,
        selectors.EXCHANGE_LATENCY,
    }
    return watched | guards | signals


def post(base: str, path: str, key: str, body: dict[str, Any]) -> int:
    response = httpx.post(
        f"{base}{path}", json=body, headers={"Authorization": f"Api-Key {key}"}, timeout=30
    )
    return response.status_code


def sample_names(text: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_every_metric_the_pack_reads_is_known_as_derived_or_reported() -> None:
    assert pack_metrics() <= set(DERIVED_METRICS) | set(REPORTED_METRICS)
    # Derived is what the derivation writes: every trading metric but the reported equity.
    assert set(DERIVED_METRICS) == DERIVED_NAMES
    assert not set(DERIVED_METRICS) & set(REPORTED_METRICS)


def test_promtool_finds_nothing_to_lint_in_the_trading_metrics_or_our_own(
    tmp_path: Path,
) -> None:
    assert Path(PROMTOOL).exists(), (
        "promtool is not installed: `make test` installs it with Prometheus (Debian: "
        "apt-get install prometheus) through scripts/ensure-services."
    )
    source, key = source_create(name="lint-bot")
    now = timezone.now().replace(microsecond=0)
    # Five hours of equity, up and down: drawdowns, Sharpe and Sortino are all defined.
    equity = [10_000, 10_200, 9_900, 10_100, 9_800, 10_050]
    samples = [
        {"name": "equity", "value": value, "ts": (now - timedelta(hours=5 - n)).isoformat()}
        for n, value in enumerate(equity)
    ]
    # What the source reports itself, besides equity: with a label, as a bot may send it.
    reported = (pack_metrics() | set(REPORTED_METRICS)) - set(DERIVED_METRICS) - {"equity"}
    samples += [
        {
            "name": name,
            "value": 120.0 if name == "exchange_latency_ms" else 7.0,
            "ts": now.isoformat(),
            "labels": {"venue": "binance"},
        }
        for name in sorted(reported)
    ]
    # Opening fills without a pnl, then wins and losses; a position stays open.
    trades = [
        {"id": "open-1", "symbol": "BTC/USDT", "side": "buy", "quantity": 0.1, "price": 50_000},
        {"id": "win-1", "symbol": "ETH/USDT", "side": "sell", "quantity": 1, "price": 3_000,
         "pnl": 120.0, "fee": 1.5},
        {"id": "loss-1", "symbol": "ETH/USDT", "side": "sell", "quantity": 1, "price": 2_950,
         "pnl": -80.0, "fee": 1.5},
        {"id": "loss-2", "symbol": "SOL/USDT", "side": "sell", "quantity": 2, "price": 150,
         "pnl": -10.0, "fee": 0.2},
    ]  # fmt: skip
    for offset, trade in enumerate(trades):
        trade["ts"] = (now - timedelta(minutes=4) + timedelta(seconds=offset)).isoformat()

    port = free_port()
    env = process_environment(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus-multiproc"))
    with web_server(env, port):
        base = f"http://127.0.0.1:{port}"
        assert post(base, "/api/v1/metrics", key, {"samples": samples}) == 202
        assert post(base, "/api/v1/trades", key, {"trades": trades}) == 202
        assert post(base, "/api/v1/heartbeat", key, {"status": "ok"}) == 202
        assert post(base, "/api/v1/metrics", key, {"samples": [{"name": "x"}]}) == 400
        # What a worker does after such a batch: the derived trading metrics.
        for _ in range(100):
            if trading_metrics_derive(source=source).complete:
                break
        process_heartbeat_record(role="beat", name="beat")
        worker_presence_record(name="all@host", queues=["default", "ingest", "delivery", "health"])
        self_check()
        text = httpx.get(f"{base}/metrics", timeout=30).text

    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )

    lint = checked.stdout + checked.stderr
    assert (checked.returncode, lint) == (0, ""), lint
    exposed = sample_names(text)
    # Everything that could trip the lint is really there to be linted.
    missing = {
        name: family_name(name)
        for name in pack_metrics() | set(DERIVED_METRICS) | set(REPORTED_METRICS)
        if family_name(name) not in exposed
    }
    assert not missing, missing
    assert not OWN_SERIES - exposed, sorted(OWN_SERIES - exposed)
    assert "tradewatch_metric_exchange_latency_seconds" in exposed
    assert "tradewatch_metric_trade_count_value" in exposed
    helps = {family.name: family.documentation for family in text_string_to_metric_families(text)}
    assert helps["tradewatch_metric_equity"].startswith("Reported by the source")
    assert helps["tradewatch_metric_drawdown_pct"].startswith("Derived by Tradewatch")
