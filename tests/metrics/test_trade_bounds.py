"""Trade values are bounded at ingestion, so no PnL figure is ever lost to an overflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.derived import trading_metrics_derive
from metrics.models import Source, Trade

pytestmark = pytest.mark.django_db

# The bound the README documents (metrics.validation.MAX_TRADE_MAGNITUDE).
MAX_TRADE_MAGNITUDE = 1e15

TRADE = {"id": "t-1", "symbol": "BTC/USDT", "side": "sell", "quantity": 0.1, "price": 50000,
         "pnl": 150.5, "fee": 0.1}  # fmt: skip


def post_trades(client: APIClient, trades: list[dict[str, Any]]) -> Any:
    body = json.dumps({"trades": trades})
    return client.post("/api/v1/trades", body, content_type="application/json")


def pnl_figures(reader: APIClient, source: Source) -> dict[str, float]:
    response = reader.get(f"/api/v1/sources/{source.pk}/snapshot")
    assert response.status_code == 200, response.content
    trading = response.json()["trading"] or {}
    return {
        name: trading[name]["value"]
        for name in ("total_pnl", "daily_pnl", "weekly_pnl")
        if name in trading
    }


def test_it_refuses_two_trades_whose_pnl_sum_would_overflow(source_client: APIClient) -> None:
    response = post_trades(
        source_client, [{**TRADE, "pnl": 1.7e308}, {**TRADE, "id": "t-2", "pnl": 1.7e308}]
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "pnl"), (1, "pnl")]
    assert "at most 1e+15" in errors[0]["message"]
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pnl": -2e15}, "pnl"),
        ({"fee": 1.5e15}, "fee"),
        ({"quantity": 2e15, "price": 0.1}, "quantity"),
        ({"price": 1e16, "quantity": 1e-3}, "price"),
        # each within the bound, the notional beyond it
        ({"quantity": 1e8, "price": 1e8}, "quantity"),
    ],
)
def test_it_refuses_a_trade_value_beyond_the_bound_naming_the_field(
    source_client: APIClient, change: dict[str, Any], field: str
) -> None:
    response = post_trades(source_client, [TRADE, {**TRADE, "id": "t-2", **change}])

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert "1e+15" in error["message"]
    assert not Trade.objects.exists()


def test_it_keeps_every_pnl_figure_for_trades_at_the_bound(
    source_client: APIClient, source: Source, reader: APIClient
) -> None:
    now = timezone.now().isoformat()
    refused = post_trades(source_client, [{**TRADE, "pnl": 1.7e308, "ts": now}])
    assert refused.status_code == 400
    at_bound = [
        {**TRADE, "id": f"t-{i}", "pnl": MAX_TRADE_MAGNITUDE, "fee": 0.0, "ts": now}
        for i in range(3)
    ]
    assert post_trades(source_client, at_bound).status_code == 202

    trading_metrics_derive(source=source)

    assert pnl_figures(reader, source) == {
        "total_pnl": 3 * MAX_TRADE_MAGNITUDE,
        "daily_pnl": 3 * MAX_TRADE_MAGNITUDE,
        "weekly_pnl": 3 * MAX_TRADE_MAGNITUDE,
    }
