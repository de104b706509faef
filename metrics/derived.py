"""Derived trading metrics of a source: gather trades and equity, derive, store as samples.

The arithmetic lives in `metrics.trading` (pure); this module only reads its inputs
from the database and writes its results through `metrics.ingest`, under the names of
`metrics.trading.METRICS`, so rules and charts treat them like any other metric.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import TruncMinute
from django.utils import timezone

from . import trading
from .ingest import EQUITY_METRIC, metric_ingest
from .models import MetricSample, MetricSeries, Source, Trade
from .validation import EMPTY_LABELS_KEY, Sample


def _trades(source: Source, since: datetime) -> list[trading.Trade]:
    rows = (
        Trade.objects.filter(source=source, ts__gte=since)
        .order_by("ts", "id")
        .values_list("ts", "symbol", "side", "quantity", "price", "pnl", "fee")
    )
    return [
        trading.Trade(
            ts=ts,
            symbol=symbol,
            side=cast(trading.Side, side),
            quantity=quantity,
            price=price,
            pnl=pnl,
            fee=fee,
        )
        for ts, symbol, side, quantity, price, pnl, fee in rows
    ]


def _equity_points(source: Source, since: datetime) -> list[trading.EquityPoint]:
    """Equity of the window, one point per minute: the minute's highest value.

    A bot reporting equity every second would otherwise bring millions of rows; the
    per-minute high keeps every peak (drawdown is measured from peaks), and the
    newest raw value is appended so the current drawdown is exact.
    """
    series = MetricSeries.objects.filter(
        source=source, name=EQUITY_METRIC, labels_key=EMPTY_LABELS_KEY
    ).first()
    if series is None or series.last_ts is None or series.last_value is None:
        return []
    minutes = (
        MetricSample.objects.filter(series=series, ts__gte=since)
        .annotate(minute=TruncMinute("ts"))
        .values("minute")
        .annotate(high=Max("value"))
        .order_by("minute")
        .values_list("minute", "high")
    )
    points = [trading.EquityPoint(ts=minute, equity=high) for minute, high in minutes]
    points.append(trading.EquityPoint(ts=series.last_ts, equity=series.last_value))
    return points


def trading_metrics_derive(*, source: Source, now: datetime | None = None) -> dict[str, float]:
    """Recompute the source's derived trading metrics and store them as samples at `now`.

    Inputs are the trades and equity of the metric retention window, so "total" PnL
    and win rate cover that window.
    """
    now = now or timezone.now()
    since = now - timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS)
    values = trading.derive_metrics(
        trades=_trades(source, since), equity_points=_equity_points(source, since), now=now
    )
    # Equity is what the source itself reports; storing it again would echo the input.
    values.pop(EQUITY_METRIC, None)
    if values:
        metric_ingest(
            source=source,
            samples=[
                Sample(name=name, labels={}, labels_key=EMPTY_LABELS_KEY, ts=now, value=value)
                for name, value in sorted(values.items())
            ],
            evaluate=False,
        )
    return values
