"""A source's trading metrics as running state, folded one input at a time.

Pure: no Django, no I/O. `metrics.derived` reads a source's new equity samples and
trades, feeds them here in time order, and stores what `Ledger.values` returns; the
ledger itself is kept between batches (as JSON), so the cost of a batch grows with
the batch, never with the history behind it.

The definitions are those of `metrics.trading` (its module docstring states every
convention), applied at each input's own time:

* Inputs are folded in the order (time, trades before equity, then arrival): the
  equity a source reports at an instant already reflects its fills of that instant.
* Peak equity and maximum drawdown run from the first equity sample Tradewatch
  received for the source: pruning old samples does not forget the peak.
* Daily / weekly figures are those of the UTC day / ISO week of the newest input.
* Sharpe and Sortino are not folded: they are a function of the hourly equity grid
  over 30 days, which the caller computes from checkpoints (`returns_ratios`) when a
  grid time passes, and stores here until the next one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from . import trading

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# Net quantity this small relative to the quantity traded is float residue, not a
# position (as in `trading.positions_from_trades`).
_FLAT_RELATIVE: Final = 1e-9


def micros(ts: datetime) -> int:
    """A moment as integer microseconds since the UNIX epoch (exact, JSON-friendly)."""
    return (ts - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_DAY: Final = 86_400_000_000
# 1970-01-01 was a Thursday: three days after the Monday its ISO week began on.
_EPOCH_WEEKDAY: Final = 3


def _day(at: int) -> int:
    """Start of the UTC day of `at` (microseconds), as `trading.utc_day_bounds`."""
    return at - at % _DAY


def _week(at: int) -> int:
    """Start (Monday 00:00 UTC) of the ISO week of `at`, as `trading.iso_week_bounds`."""
    day = at - at % _DAY
    return day - ((day // _DAY + _EPOCH_WEEKDAY) % 7) * _DAY


def _drawdown(peak: float | None, equity: float) -> float | None:
    if peak is None or peak <= 0:
        return None
    value = (peak - equity) / peak * 100.0
    return value if math.isfinite(value) else None


@dataclass
class RecentTrades:
    """Times (microseconds) of the fills of the last 5 minutes, for `trades_last_5m`."""

    window: int = trading.RECENT_TRADES_WINDOW // _MICROSECOND
    stamps: deque[int] = field(default_factory=deque)

    def add(self, at: int) -> None:
        self.stamps.append(at)

    def count_at(self, now: int) -> int:
        """Fills with now - window < at <= now (inputs arrive in time order)."""
        start = now - self.window
        stamps = self.stamps
        while stamps and stamps[0] <= start:
            stamps.popleft()
        return len(stamps)


@dataclass
class Ledger:
    """Everything the derived metrics of one source need, as of its newest input.

    Times are integer microseconds since the epoch (see `micros`): exact, and cheap to
    keep as JSON.
    """

    as_of: int | None = None
    # equity
    equity: float | None = None
    first_equity_at: int | None = None
    peak: float | None = None
    max_drawdown: float | None = None
    day: int | None = None  # the UTC day of the newest equity sample
    day_peak: float | None = None  # the highest of that day's equity and its opening
    week: int | None = None
    week_peak: float | None = None
    # trades
    trade_count: int = 0
    closed: int = 0
    wins: int = 0
    losing_streak: int = 0
    total_pnl: float = 0.0
    pnl_day: int | None = None
    daily_pnl: float = 0.0
    pnl_week: int | None = None
    weekly_pnl: float = 0.0
    # symbol -> [net quantity, quantity traded, last fill price]
    positions: dict[str, list[float]] = field(default_factory=dict)
    # set by the caller at each grid time (see the module docstring)
    sharpe: float | None = None
    sortino: float | None = None
    returns_at: int | None = None
    # the newest checkpoint written for this ledger, and each metric's value as last
    # stored (see `metrics.derived`)
    checkpointed_at: int | None = None
    stored: dict[str, float] = field(default_factory=dict)

    # --- folding ---------------------------------------------------------------------

    def add_equity(self, at: int, value: float) -> None:
        """Fold one equity sample at `at` (microseconds; time order: see the module
        docstring)."""
        if self.peak is None or value > self.peak:
            self.peak = value
        drawdown = _drawdown(self.peak, value)
        if drawdown is not None and (self.max_drawdown is None or drawdown > self.max_drawdown):
            self.max_drawdown = drawdown
        day, week = _day(at), _week(at)
        # A new period opens on the last equity before it (None before the first one).
        if day != self.day:
            self.day, self.day_peak = day, self.equity
        if week != self.week:
            self.week, self.week_peak = week, self.equity
        self.day_peak = value if self.day_peak is None else max(self.day_peak, value)
        self.week_peak = value if self.week_peak is None else max(self.week_peak, value)
        self.equity = value
        if self.first_equity_at is None:
            self.first_equity_at = at
        self.as_of = at

    def add_trade(self, at: int, trade: trading.Trade) -> None:
        """Fold one fill at `at` (microseconds; time order: see the module docstring)."""
        net = trade.net_pnl
        self.trade_count += 1
        self.total_pnl += net
        day, week = _day(at), _week(at)
        if day != self.pnl_day:
            self.pnl_day, self.daily_pnl = day, 0.0
        if week != self.pnl_week:
            self.pnl_week, self.weekly_pnl = week, 0.0
        self.daily_pnl += net
        self.weekly_pnl += net
        if trade.pnl is not None:
            self.closed += 1
            if net > 0:
                self.wins += 1
            self.losing_streak = self.losing_streak + 1 if net < 0 else 0
        held = self.positions.get(trade.symbol)
        if held is None:
            held = self.positions[trade.symbol] = [0.0, 0.0, 0.0]
        held[0] += trade.quantity if trade.side == "buy" else -trade.quantity
        held[1] += trade.quantity
        held[2] = trade.price
        self.as_of = at

    # --- what moves with each input ----------------------------------------------------

    def equity_path(self) -> dict[str, float]:
        """After an equity sample: the metrics it moves that can fall back again (peak,
        maximum drawdown and counts only grow, so their newest value is their extreme)."""
        equity = cast(float, self.equity)
        moved = {
            "drawdown_pct": _drawdown(self.peak, equity),
            "daily_drawdown_pct": _drawdown(self.day_peak, equity),
            "weekly_drawdown_pct": _drawdown(self.week_peak, equity),
        }
        if self.trade_count:
            moved |= self._exposure(equity)
        return {name: value for name, value in moved.items() if value is not None}

    def trade_path(self, recent_trades: int) -> dict[str, float]:
        """After a fill: the metrics it moves that can fall back again."""
        moved: dict[str, float | None] = {
            "daily_pnl": self.daily_pnl,
            "weekly_pnl": self.weekly_pnl,
            "total_pnl": self.total_pnl,
            "win_rate_pct": self.wins / self.closed * 100.0 if self.closed else None,
            "consecutive_losses": float(self.losing_streak),
            "trades_last_5m": float(recent_trades),
        }
        if self.equity is not None:
            moved |= self._exposure(self.equity)
        return {
            name: value
            for name, value in moved.items()
            if value is not None and math.isfinite(value)
        }

    def _exposure(self, equity: float) -> dict[str, float | None]:
        notionals = self.notionals()
        return {
            "largest_position_pct": trading.largest_position_pct(notionals, equity),
            "exposure_pct": trading.exposure_pct(notionals, equity),
            "leverage": trading.leverage(notionals, equity),
        }

    # --- reading ---------------------------------------------------------------------

    def notionals(self) -> dict[str, float]:
        """Signed notional per open symbol (flat ones left out)."""
        return {
            symbol: net * price
            for symbol, (net, traded, price) in self.positions.items()
            if abs(net) > _FLAT_RELATIVE * traded
        }

    def values(self, now: datetime, recent_trades: int) -> dict[str, float]:
        """Every metric of `trading.METRICS` the inputs define, at `now` (the newest
        input's time); `recent_trades`: trades in the 5 minutes up to `now`."""
        at = micros(now)
        day, week = _day(at), _week(at)
        result: dict[str, float | None] = {
            "trade_count": float(self.trade_count),
            "total_pnl": self.total_pnl,
            "daily_pnl": self.daily_pnl if self.pnl_day == day else 0.0,
            "weekly_pnl": self.weekly_pnl if self.pnl_week == week else 0.0,
            "win_rate_pct": self.wins / self.closed * 100.0 if self.closed else None,
            "consecutive_losses": float(self.losing_streak),
            "trades_last_5m": float(recent_trades),
        }
        equity = self.equity
        if equity is not None:
            # No equity yet in this day (week): it opens on the last one, a drawdown of 0.
            day_peak = self.day_peak if self.day == day else equity
            week_peak = self.week_peak if self.week == week else equity
            result |= {
                "equity": equity,
                "peak_equity": self.peak,
                "drawdown_pct": _drawdown(self.peak, equity),
                "max_drawdown_pct": self.max_drawdown,
                "daily_drawdown_pct": _drawdown(day_peak, equity),
                "weekly_drawdown_pct": _drawdown(week_peak, equity),
                "sharpe_ratio": self.sharpe,
                "sortino_ratio": self.sortino,
            }
            if self.trade_count:
                result |= self._exposure(equity)
        return {
            name: float(value)
            for name, value in result.items()
            if value is not None and math.isfinite(value)
        }

    # --- keeping ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The ledger as plain JSON values, copied (a checkpoint outlives later folds)."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["positions"] = {symbol: list(held) for symbol, held in self.positions.items()}
        data["stored"] = dict(self.stored)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ledger:
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        ledger = cls(**known)
        ledger.positions = {symbol: list(held) for symbol, held in ledger.positions.items()}
        ledger.stored = dict(ledger.stored)
        return ledger


_FIELDS: Final = tuple(f.name for f in fields(Ledger))


def returns_ratios(grid_equity: Iterable[float]) -> tuple[float | None, float | None]:
    """Sharpe and Sortino of the returns between consecutive grid values (hourly)."""
    returns = trading.simple_returns(grid_equity)
    per_year = trading.YEAR / trading.DEFAULT_RETURN_PERIOD
    return (
        trading.sharpe_ratio(returns, periods_per_year=per_year),
        trading.sortino_ratio(returns, periods_per_year=per_year),
    )


def grid_times(first_equity: datetime, now: datetime) -> list[datetime]:
    """The grid times Sharpe and Sortino sample equity at, as of `now` (see
    `trading.resample_equity`): multiples of the return period since the epoch, over the
    trailing return window, from the first equity sample on."""
    period = trading.DEFAULT_RETURN_PERIOD // _MICROSECOND
    first = max(micros(now - trading.DEFAULT_RETURN_WINDOW), micros(first_equity))
    first_k = -(-first // period)
    last_k = micros(now) // period
    return [from_micros(k * period) for k in range(first_k, last_k + 1)]
