"""Derived trading metrics: recomputed from stored trades and equity, stored as samples."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.tasks import evaluate_source
from metrics.derived import trading_metrics_derive
from metrics.models import MetricSeries, Source
from metrics.tasks import DERIVATION_NEEDED
from tests.processes import celery_worker, process_environment, wait_until

pytestmark = pytest.mark.django_db


def post(client: APIClient, path: str, body: object) -> None:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content


def latest(source: Source) -> dict[str, float | None]:
    return {
        name: value
        for name, value in MetricSeries.objects.filter(source=source, labels_key="{}").values_list(
            "name", "last_value"
        )
    }


def test_it_derives_drawdown_pnl_and_win_rate_from_trades_and_equity(
    source_client: APIClient, source: Source
) -> None:
    now = timezone.now()
    equity = [(10, 1000.0), (8, 1200.0), (5, 900.0)]  # minutes ago, value
    post(source_client, "/api/v1/metrics", {"samples": [
        {"name": "equity", "value": value, "ts": (now - timedelta(minutes=m)).isoformat()}
        for m, value in equity
    ]})  # fmt: skip
    btc, eth = {"symbol": "BTC/USDT"}, {"symbol": "ETH/USDT"}
    post(source_client, "/api/v1/trades", {"trades": [
        {**btc, "id": "1", "side": "buy", "quantity": 1, "price": 100, "pnl": 50, "fee": 1},
        {**btc, "id": "2", "side": "sell", "quantity": 1, "price": 90, "pnl": -20, "fee": 1},
        {**eth, "id": "3", "side": "buy", "quantity": 2, "price": 45, "pnl": -5, "fee": 0},
    ]})  # fmt: skip

    values = trading_metrics_derive(source=source, now=timezone.now())

    stored = latest(source)
    # peak 1200, now 900: (1200 - 900) / 1200 = 25 %
    assert stored["drawdown_pct"] == pytest.approx(25.0)
    assert stored["max_drawdown_pct"] == pytest.approx(25.0)
    assert stored["peak_equity"] == 1200.0
    # net pnl: (50 - 1) + (-20 - 1) + (-5 - 0) = 23
    assert stored["total_pnl"] == pytest.approx(23.0)
    assert stored["daily_pnl"] == pytest.approx(23.0)
    # one win of three closing trades
    assert stored["win_rate_pct"] == pytest.approx(100 / 3)
    assert stored["consecutive_losses"] == 2
    assert stored["trades_last_5m"] == 3
    # open: BTC flat (buy 1, sell 1), ETH 2 x 45 = 90 of equity 900 -> 10 %
    assert stored["largest_position_pct"] == pytest.approx(10.0)
    assert stored["equity"] == 900.0  # the source's own series, not written again
    assert "equity" not in values


def test_it_derives_nothing_but_zero_counts_for_a_source_without_data(source: Source) -> None:
    values = trading_metrics_derive(source=source)

    assert values["trade_count"] == 0
    assert "drawdown_pct" not in values
    assert "win_rate_pct" not in values


def test_it_queues_one_evaluation_for_a_burst_of_batches(
    source_client: APIClient, source: Source, django_capture_on_commit_callbacks: object
) -> None:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("ingest")

    for i in range(20):
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            post(source_client, "/api/v1/trades", {"trades": [
                {"id": f"t-{i}", "symbol": "BTC/USDT", "side": "buy", "quantity": 1, "price": 1}
            ]})  # fmt: skip

    queued = [json.loads(message) for message in broker.lrange("ingest", 0, -1)]
    assert [m["headers"]["task"] for m in queued] == ["alerts.tasks.evaluate_source"]
    assert json.loads(base64.b64decode(queued[0]["body"]))[0] == [source.pk]
    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) == 1
    broker.delete("ingest")


def test_it_asks_for_no_derivation_for_samples_other_than_equity(
    source_client: APIClient, source: Source, django_capture_on_commit_callbacks: object
) -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("ingest")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        post(source_client, "/api/v1/metrics", {"samples": [{"name": "latency_ms", "value": 3}]})

    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) is None
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("ingest")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_derives_in_a_real_worker_after_trades_arrive_over_the_api(
    source_client: APIClient, source: Source
) -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("ingest")
    with celery_worker(process_environment(), queues="ingest"):
        post(source_client, "/api/v1/metrics", {"samples": [{"name": "equity", "value": 1000}]})
        post(source_client, "/api/v1/trades", {"trades": [
            {"id": "w", "symbol": "BTC/USDT", "side": "sell", "quantity": 1, "price": 10, "pnl": 12}
        ]})  # fmt: skip

        assert wait_until(lambda: latest(source).get("total_pnl") == 12.0, 60)

    assert latest(source)["win_rate_pct"] == 100.0


def test_it_skips_a_disabled_source(source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(enabled=False)

    evaluate_source.run(source.pk)

    assert not MetricSeries.objects.filter(source=source).exists()
