"""Derived trading metrics computed independently, from the README's definitions.

Nothing here comes from `metrics.trading`, `metrics.ledger` or `metrics.derived`: the
series are plain pandas objects, maximum drawdown, Sharpe and Sortino are
empyrical's (`empyrical-reloaded`), and the rest is pandas arithmetic. The conventions
are those the README states (and `metrics/trading.py` repeats):

* values are as of the newest input (equity sample or trade);
* PnL is net of fees, `(pnl or 0) - fee`; win rate and losing streaks count trades
  with a pnl only; a scratch (net 0) ends a losing streak;
* drawdown is (peak - equity) / peak x 100 from the running peak; the daily (weekly)
  one is measured from the highest equity of the UTC day (ISO week) of the newest
  input, the last equity before that period counting as its opening;
* Sharpe and Sortino sample equity on the hourly UTC grid over the trailing 30 days
  (from the first sample on), annualise with 8,760 hourly periods a year, use a
  risk-free rate of 0, the sample deviation (ddof 1) for Sharpe and the downside
  deviation over all periods for Sortino;
* positions fold fills (buy +, sell -), marked at the last fill price; a net
  quantity within 1e-9 of the quantity traded is flat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import empyrical
import numpy as np
import pandas as pd

HOURS_PER_YEAR = 365 * 24
WINDOW = pd.Timedelta(days=30)


@dataclass(frozen=True)
class TradeRow:
    trade_id: str
    ts: datetime
    symbol: str
    side: str
    quantity: float
    price: float
    pnl: float | None
    fee: float


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def reference_metrics(
    equity: dict[datetime, float], trades: Sequence[TradeRow]
) -> dict[str, float | None]:
    """Every derived metric as of the newest input. `equity`: the value stored at each
    instant; `trades`: in arrival order (the first of an id wins, as ingestion keeps)."""
    first_of_id: dict[str, TradeRow] = {}
    for trade in trades:
        first_of_id.setdefault(trade.trade_id, trade)
    fills = pd.DataFrame(
        [
            {
                "ts": pd.Timestamp(t.ts),
                "symbol": t.symbol,
                "signed": t.quantity if t.side == "buy" else -t.quantity,
                "quantity": t.quantity,
                "price": t.price,
                "pnl": np.nan if t.pnl is None else t.pnl,
                "fee": t.fee,
            }
            for t in first_of_id.values()
        ],
        columns=["ts", "symbol", "signed", "quantity", "price", "pnl", "fee"],
    )
    # Stable: trades of one instant keep their arrival order.
    fills = fills.sort_values("ts", kind="stable").reset_index(drop=True)
    series = pd.Series(
        list(equity.values()), index=pd.DatetimeIndex(list(equity.keys())), dtype=float
    ).sort_index()

    stamps = list(series.index) + list(fills["ts"])
    now = max(stamps)
    day = now.floor("D")
    week = day - pd.Timedelta(days=day.weekday())

    fills["net"] = fills["pnl"].fillna(0.0) - fills["fee"]
    closed = fills[fills["pnl"].notna()]
    losing = 0
    for net in reversed(closed["net"].tolist()):
        if net >= 0:
            break
        losing += 1
    result: dict[str, float | None] = {
        "trade_count": float(len(fills)),
        "total_pnl": float(fills["net"].sum()),
        "daily_pnl": float(fills.loc[fills["ts"] >= day, "net"].sum()),
        "weekly_pnl": float(fills.loc[fills["ts"] >= week, "net"].sum()),
        "win_rate_pct": (
            float((closed["net"] > 0).sum() / len(closed) * 100.0) if len(closed) else None
        ),
        "consecutive_losses": float(losing),
        "trades_last_5m": float(
            ((fills["ts"] > now - pd.Timedelta(minutes=5)) & (fills["ts"] <= now)).sum()
        ),
    }
    if series.empty:
        return result

    last = float(series.iloc[-1])
    running_peak = series.cummax()
    peak = float(running_peak.iloc[-1])
    returns = series.pct_change().dropna()
    max_drawdown = -float(empyrical.max_drawdown(returns)) * 100.0 if len(returns) else 0.0
    result |= {
        "equity": last,
        "peak_equity": peak,
        "drawdown_pct": (peak - last) / peak * 100.0,
        "max_drawdown_pct": max_drawdown,
        "daily_drawdown_pct": _period_drawdown(series, day),
        "weekly_drawdown_pct": _period_drawdown(series, week),
    }
    result |= _ratios(series, now)
    if len(fills):
        by_symbol = fills.groupby("symbol", sort=False)
        net = by_symbol["signed"].sum()
        traded = by_symbol["quantity"].sum()
        mark = by_symbol["price"].last()
        open_ = net[net.abs() > 1e-9 * traded]
        notional = (open_ * mark[open_.index]).abs()
        gross = float(notional.sum())
        result |= {
            "largest_position_pct": (float(notional.max()) if len(notional) else 0.0)
            / last
            * 100.0,
            "exposure_pct": gross / last * 100.0,
            "leverage": gross / last,
        }
    return {name: _finite(value) for name, value in result.items()}


def _period_drawdown(series: pd.Series, start: pd.Timestamp) -> float:
    opening = series[series.index < start].iloc[-1:]
    inside = pd.concat([opening, series[series.index >= start]])
    peak = float(inside.max())
    return (peak - float(inside.iloc[-1])) / peak * 100.0


def _ratios(series: pd.Series, now: pd.Timestamp) -> dict[str, float | None]:
    start = max(now - WINDOW, series.index[0])
    grid = pd.date_range(start.ceil("h"), now.floor("h"), freq="h")
    if len(grid) < 3:
        return {"sharpe_ratio": None, "sortino_ratio": None}
    sampled = series.asof(grid)
    assert isinstance(sampled, pd.Series)  # one value per hour of the grid
    returns = sampled.pct_change().dropna()
    sharpe = empyrical.sharpe_ratio(returns, annualization=HOURS_PER_YEAR)
    sortino = empyrical.sortino_ratio(returns, annualization=HOURS_PER_YEAR)
    # Undefined where there is no deviation to divide by (flat equity, no losing hour).
    deviation = float(returns.std(ddof=1))
    downside = math.sqrt(float((np.minimum(returns, 0.0) ** 2).mean()))
    return {
        "sharpe_ratio": None if deviation < 1e-12 else _finite(sharpe),
        "sortino_ratio": None if downside < 1e-12 else _finite(sortino),
    }
