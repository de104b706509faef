"""Derived trading metrics: pure functions from trades and equity to plain numbers.

Nothing here touches Django or I/O. These are the definitions over a whole history;
`metrics.ledger` computes the same one input at a time (and `metrics.derived` stores
each result as a metric sample under its name, the keys of `METRICS`), at each input's
own time: `now` below is then the newest input's time.

Conventions and decisions, in one place:

* Time: every timestamp must be timezone-aware; periods are UTC. The day is the UTC
  calendar day containing `now`, the week the ISO week containing `now` (Monday
  00:00 UTC). Input need not be sorted: every function sorts by timestamp itself
  (a stable sort, so equal timestamps keep their input order; cheap on sorted input).
  Samples later than `now` are not dropped: a client clock a second ahead must not
  hide the newest sample (ingest rejects far-future timestamps).
* PnL is net of fees: a trade contributes `(pnl or 0) - fee`. `pnl` is the realised
  PnL the trading system reported; a trade without `pnl` (an opening fill) still
  costs its fee. A negative fee is a maker rebate.
* Trade outcome, for win rate and losing streaks, is decided on the same net figure,
  and only for trades that report a `pnl` (closing fills): net > 0 wins, net < 0
  loses, net == 0 is a scratch. Trading systems should therefore omit `pnl` on
  opening fills: `pnl=0` with a fee is a (small) loss.
  - `win_rate_pct` = wins / trades with a pnl x 100 (scratches count as not won).
  - `consecutive_losses` = the trailing run of losses; a scratch ends the run (it is
    not a loss), trades without a pnl are skipped (they close nothing).
* Drawdown, in percent of the running peak: (peak - equity) / peak x 100, 0 at the
  peak, >= 0, above 100 only if equity goes negative; undefined (omitted) while the
  peak is not positive. The daily / weekly drawdown is the current drawdown from the
  highest equity of the current UTC day / ISO week, where the last sample before the
  period began counts as the period's opening equity.
* Sharpe and Sortino (annualised, rolling, from equity sampled on an hourly UTC
  grid): `metrics.returns`.
* Positions come from folding fills: buy adds quantity, sell subtracts, the last
  fill price marks it. Concentration, exposure and leverage use |quantity x price|
  against the latest equity and are undefined when equity <= 0.
* No function returns NaN or +-inf: where arithmetic on extreme input would, the
  result is treated as undefined (None, or omitted by `derive_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final, Literal, TypeVar

# The `X as X` imports keep the returns part of this module's interface: every derived
# metric's definition is reachable as `trading.<name>`.
from .returns import DEFAULT_RETURN_PERIOD as DEFAULT_RETURN_PERIOD
from .returns import DEFAULT_RETURN_WINDOW as DEFAULT_RETURN_WINDOW
from .returns import YEAR as YEAR
from .returns import periodic_returns
from .returns import resample_equity as resample_equity
from .returns import rolling_sharpe as rolling_sharpe
from .returns import rolling_sortino as rolling_sortino
from .returns import sharpe_ratio as sharpe_ratio
from .returns import simple_returns as simple_returns
from .returns import sortino_ratio as sortino_ratio

Side = Literal["buy", "sell"]

#: Every metric `derive_metrics` can return: name it is stored under -> meaning.
METRICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "equity": "latest_equity(): newest equity value (account currency)",
        "peak_equity": "peak_equity(): highest equity so far",
        "drawdown_pct": "drawdown_pct(): current drawdown from the running peak, %",
        "max_drawdown_pct": "max_drawdown_pct(): largest drawdown so far, %",
        "daily_drawdown_pct": "daily_drawdown_pct(): drawdown from today's UTC peak, %",
        "weekly_drawdown_pct": "weekly_drawdown_pct(): drawdown from this ISO week's peak, %",
        "daily_pnl": "daily_pnl(): net PnL (pnl - fee) of trades in the current UTC day",
        "weekly_pnl": "weekly_pnl(): net PnL of trades in the current ISO week (UTC)",
        "total_pnl": "total_pnl(): net PnL (pnl - fee) of all trades",
        "win_rate_pct": "win_rate_pct(): winning trades / trades with a pnl, %",
        "trade_count": "trade_count(): number of trades (fills)",
        "consecutive_losses": "consecutive_losses(): trailing run of losing trades",
        "sharpe_ratio": "rolling_sharpe(): annualised Sharpe ratio of periodic returns",
        "sortino_ratio": "rolling_sortino(): annualised Sortino ratio of periodic returns",
        "trades_last_5m": "trades_in_last(): trades in the 5 minutes up to the newest input",
        "largest_position_pct": "largest_position_pct(): largest |notional| / equity, %",
        "exposure_pct": "exposure_pct(): gross |notional| / equity, %",
        "leverage": "leverage(): gross |notional| / equity, times",
    }
)

RECENT_TRADES_WINDOW: Final = timedelta(minutes=5)

# Net quantity this small relative to the quantity traded is float residue
# (0.1 + 0.2 - 0.3 != 0), not a position.
_FLAT_RELATIVE: Final = 1e-9


def _check_finite(owner: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")


def _check_aware(owner: str, ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{owner}.ts must be timezone-aware, got {ts!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One fill as the trading system reported it."""

    ts: datetime
    symbol: str
    side: Side
    quantity: float
    price: float
    pnl: float | None = None
    fee: float = 0.0

    def __post_init__(self) -> None:
        _check_aware("Trade", self.ts)
        _check_finite("Trade", quantity=self.quantity, price=self.price, pnl=self.pnl, fee=self.fee)
        if self.side not in ("buy", "sell"):
            raise ValueError(f"Trade.side must be 'buy' or 'sell', got {self.side!r}")
        if self.quantity < 0 or self.price < 0:
            raise ValueError("Trade.quantity and Trade.price must not be negative")

    @property
    def net_pnl(self) -> float:
        """Realised PnL after fees; an opening fill (no pnl) still costs its fee."""
        return (self.pnl or 0.0) - self.fee


@dataclass(frozen=True, slots=True, kw_only=True)
class EquityPoint:
    """Account equity at one moment."""

    ts: datetime
    equity: float

    def __post_init__(self) -> None:
        _check_aware("EquityPoint", self.ts)
        _check_finite("EquityPoint", equity=self.equity)


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """Net holding in one symbol, marked at the last fill price."""

    quantity: float
    last_price: float

    @property
    def notional(self) -> float:
        """Signed value of the holding: negative for a short."""
        return self.quantity * self.last_price


_Timed = TypeVar("_Timed", Trade, EquityPoint)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _by_time(items: Iterable[_Timed]) -> list[_Timed]:
    return sorted(items, key=lambda item: item.ts)


# --- periods -------------------------------------------------------------------------


def utc_day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Return [start, end) of the UTC calendar day containing `now`."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def iso_week_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Return [start, end) of the ISO week containing `now`: Monday 00:00 UTC onwards."""
    day_start, _ = utc_day_bounds(now)
    start = day_start - timedelta(days=day_start.weekday())
    return start, start + timedelta(days=7)


# --- equity and drawdown -------------------------------------------------------------


def latest_equity(points: Iterable[EquityPoint]) -> float | None:
    """Return the newest equity value, or None without samples."""
    ordered = _by_time(points)
    return ordered[-1].equity if ordered else None


def peak_equity(values: Iterable[float]) -> float | None:
    """Return the highest equity (the running maximum at the end), or None if empty."""
    return max(values, default=None)


def _drawdown(peak: float, equity: float) -> float | None:
    if peak <= 0:
        return None
    return _finite((peak - equity) / peak * 100.0)


def drawdown_pct(values: Sequence[float]) -> float | None:
    """Return the current drawdown of a time-ordered equity series, in percent.

    None while the series is empty or its peak is not positive.
    """
    if not values:
        return None
    return _drawdown(max(values), values[-1])


def max_drawdown_pct(values: Iterable[float]) -> float | None:
    """Return the largest drawdown from a running peak over a time-ordered series, in %."""
    peak = -math.inf
    worst: float | None = None
    for value in values:
        peak = max(peak, value)
        current = _drawdown(peak, value)
        if current is not None and (worst is None or current > worst):
            worst = current
    return worst


def period_drawdown_pct(
    points: Iterable[EquityPoint], start: datetime, end: datetime
) -> float | None:
    """Return the current drawdown from the highest equity since `start`, in percent.

    The last sample before `start` is the opening equity of the period, so a drop
    right at the open counts even before the period's first sample arrives.
    """
    ordered = _by_time(points)
    opening = [p.equity for p in ordered if p.ts < start][-1:]
    inside = [p.equity for p in ordered if start <= p.ts < end]
    return drawdown_pct(opening + inside)


def daily_drawdown_pct(points: Iterable[EquityPoint], now: datetime) -> float | None:
    """Return the drawdown from the peak of the current UTC day, in percent."""
    return period_drawdown_pct(points, *utc_day_bounds(now))


def weekly_drawdown_pct(points: Iterable[EquityPoint], now: datetime) -> float | None:
    """Return the drawdown from the peak of the current ISO week (UTC), in percent."""
    return period_drawdown_pct(points, *iso_week_bounds(now))


# --- trades --------------------------------------------------------------------------


def pnl_between(trades: Iterable[Trade], start: datetime, end: datetime) -> float:
    """Return the net PnL (pnl - fee) of trades with start <= ts < end."""
    return sum((t.net_pnl for t in trades if start <= t.ts < end), 0.0)


def daily_pnl(trades: Iterable[Trade], now: datetime) -> float:
    """Return the net PnL of the current UTC day."""
    return pnl_between(trades, *utc_day_bounds(now))


def weekly_pnl(trades: Iterable[Trade], now: datetime) -> float:
    """Return the net PnL of the current ISO week (UTC)."""
    return pnl_between(trades, *iso_week_bounds(now))


def total_pnl(trades: Iterable[Trade]) -> float:
    """Return the net PnL of all the trades given."""
    return sum((t.net_pnl for t in trades), 0.0)


def trade_count(trades: Iterable[Trade]) -> int:
    """Return the number of trades (fills), with or without a pnl."""
    return sum(1 for _ in trades)


def win_rate_pct(trades: Iterable[Trade]) -> float | None:
    """Return winning trades / trades with a pnl in percent; None when none has one."""
    closed = [t for t in trades if t.pnl is not None]
    if not closed:
        return None
    wins = sum(1 for t in closed if t.net_pnl > 0)
    return wins / len(closed) * 100.0


def consecutive_losses(trades: Iterable[Trade]) -> int:
    """Return the length of the trailing run of losing trades.

    A scratch (net pnl exactly 0) ends the run; trades without a pnl are skipped.
    """
    run = 0
    for trade in reversed(_by_time(trades)):
        if trade.pnl is None:
            continue
        if trade.net_pnl >= 0:
            break
        run += 1
    return run


def trades_in_last(
    trades: Iterable[Trade], now: datetime, window: timedelta = RECENT_TRADES_WINDOW
) -> int:
    """Return how many trades have now - window < ts <= now."""
    return sum(1 for t in trades if now - window < t.ts <= now)


# --- positions -----------------------------------------------------------------------


def positions_from_trades(trades: Iterable[Trade]) -> dict[str, Position]:
    """Fold fills into the net position per symbol; flat symbols are left out.

    A buy adds its quantity, a sell subtracts it (so a net negative is a short); the
    last fill's price marks the position.
    """
    net: dict[str, float] = {}
    traded: dict[str, float] = {}
    last_price: dict[str, float] = {}
    for trade in _by_time(trades):
        signed = trade.quantity if trade.side == "buy" else -trade.quantity
        net[trade.symbol] = net.get(trade.symbol, 0.0) + signed
        traded[trade.symbol] = traded.get(trade.symbol, 0.0) + trade.quantity
        last_price[trade.symbol] = trade.price
    return {
        symbol: Position(quantity=quantity, last_price=last_price[symbol])
        for symbol, quantity in net.items()
        if abs(quantity) > _FLAT_RELATIVE * traded[symbol]
    }


def position_notionals(positions: Mapping[str, Position]) -> dict[str, float]:
    """Return the signed notional (quantity x last price) per symbol."""
    return {symbol: position.notional for symbol, position in positions.items()}


def largest_position_pct(notionals: Mapping[str, float], equity: float) -> float | None:
    """Return the largest |notional| as a percentage of equity (concentration).

    0 with no positions; None when equity <= 0.
    """
    if equity <= 0:
        return None
    largest = max((abs(n) for n in notionals.values()), default=0.0)
    return _finite(largest / equity * 100.0)


def leverage(notionals: Mapping[str, float], equity: float) -> float | None:
    """Return gross exposure (sum of |notional|) / equity; None when equity <= 0."""
    if equity <= 0:
        return None
    return _finite(sum(abs(n) for n in notionals.values()) / equity)


def exposure_pct(notionals: Mapping[str, float], equity: float) -> float | None:
    """Return gross exposure as a percentage of equity; None when equity <= 0."""
    times = leverage(notionals, equity)
    return None if times is None else _finite(times * 100.0)


# --- everything at once --------------------------------------------------------------


def derive_metrics(
    *,
    trades: Iterable[Trade],
    equity_points: Iterable[EquityPoint],
    now: datetime,
    notionals: Mapping[str, float] | None = None,
    return_period: timedelta = DEFAULT_RETURN_PERIOD,
    return_window: timedelta = DEFAULT_RETURN_WINDOW,
    risk_free_rate: float = 0.0,
) -> dict[str, float]:
    """Return every metric of `METRICS` that the data defines, keyed by metric name.

    The whole-history definition: `metrics.ledger.Ledger` folds to the same values
    (tests/metrics/test_ledger.py holds them equal).

    Undefined metrics (no equity yet, no closed trade, too few returns) are left
    out rather than reported as NaN. `trades` should be the source's whole history
    (totals, win rate and positions are over what is given); `notionals` overrides
    the positions folded from the trades, e.g. with exchange-marked values.
    """
    _check_aware("derive_metrics", now)
    ordered_trades = _by_time(trades)
    points = _by_time(equity_points)
    values = [p.equity for p in points]

    result: dict[str, float | None] = {
        "daily_pnl": daily_pnl(ordered_trades, now),
        "weekly_pnl": weekly_pnl(ordered_trades, now),
        "total_pnl": total_pnl(ordered_trades),
        "win_rate_pct": win_rate_pct(ordered_trades),
        "trade_count": trade_count(ordered_trades),
        "consecutive_losses": consecutive_losses(ordered_trades),
        "trades_last_5m": trades_in_last(ordered_trades, now),
    }
    if points:
        equity = values[-1]
        # Positions are known from trades (or given); without either, "no positions"
        # would be a guess, and a zero leverage derived from it would hide the leverage
        # a bot reports itself.
        positions_known = notionals is not None or bool(ordered_trades)
        if notionals is None:
            notionals = position_notionals(positions_from_trades(ordered_trades))
        returns = periodic_returns(points, now, return_period, return_window)
        periods_per_year = YEAR / return_period
        result |= {
            "equity": equity,
            "peak_equity": peak_equity(values),
            "drawdown_pct": drawdown_pct(values),
            "max_drawdown_pct": max_drawdown_pct(values),
            "daily_drawdown_pct": daily_drawdown_pct(points, now),
            "weekly_drawdown_pct": weekly_drawdown_pct(points, now),
            "sharpe_ratio": sharpe_ratio(
                returns, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate
            ),
            "sortino_ratio": sortino_ratio(
                returns, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate
            ),
        }
        if positions_known:
            result |= {
                "largest_position_pct": largest_position_pct(notionals, equity),
                "exposure_pct": exposure_pct(notionals, equity),
                "leverage": leverage(notionals, equity),
            }
    # Sums of extreme but finite input could overflow; such a figure is not a
    # measurement, so it is dropped with the undefined ones. Ingestion bounds every
    # trade value (`validation.MAX_TRADE_MAGNITUDE`), so the PnL sums never get there.
    return {
        name: float(value)
        for name, value in result.items()
        if value is not None and math.isfinite(value)
    }
