"""Risk-adjusted returns of an equity series: Sharpe and Sortino, annualised, rolling.

Pure functions, no Django, no I/O, as `metrics.trading` (whose conventions hold here).
Equity is sampled on a fixed UTC grid of period P (default 1 hour, aligned to the UNIX
epoch) over the trailing window W (default 30 days) ending at `now`; the value at each
grid time is the last equity at or before it. Returns are r_i = E_i / E_(i-1) - 1
(skipped where E_(i-1) <= 0). With periods per year N = 365 days / P (crypto trades
24/7) and the annual risk-free rate rf (default 0) taken per period as rf / N, excess
returns are x_i = r_i - rf / N and

    sharpe  = mean(x) / stdev(x, ddof=1) x sqrt(N)
    sortino = mean(x) / sqrt(mean(min(0, x_i)^2 over ALL periods)) x sqrt(N)

i.e. the Sortino target return is the risk-free rate (0 by default). Both are undefined
with fewer than 2 returns or a zero deviation (flat equity; for Sortino also no losing
period) - they are omitted, never inf. Hourly sampling gives an intraday bot a
meaningful figure within a day instead of after weeks of daily returns; the grid makes
irregular sample timing irrelevant.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .trading import EquityPoint

DEFAULT_RETURN_PERIOD: Final = timedelta(hours=1)
DEFAULT_RETURN_WINDOW: Final = timedelta(days=30)
YEAR: Final = timedelta(days=365)

# A per-period standard deviation below this is rounding noise on dimensionless
# returns (1e-10 %), not risk: dividing by it would report an absurd ratio.
_ZERO_DEVIATION: Final = 1e-12
# Bounds the work of resampling when a caller passes a tiny period.
_MAX_PERIODS: Final = 100_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICROSECOND


def resample_equity(
    points: Iterable[EquityPoint],
    now: datetime,
    *,
    period: timedelta = DEFAULT_RETURN_PERIOD,
    window: timedelta = DEFAULT_RETURN_WINDOW,
) -> list[float]:
    """Return equity at each grid time (multiples of `period` since the epoch).

    The grid covers [now - window, now] from the first sample on; each value is the
    last equity at or before its grid time.
    """
    step = period // _MICROSECOND
    if step <= 0 or window // period > _MAX_PERIODS:
        raise ValueError(f"period {period} must be positive and at most window/{_MAX_PERIODS}")
    # A stable sort: equal timestamps keep their input order (the later one counts).
    ordered = sorted(points, key=lambda point: point.ts)
    if not ordered:
        return []
    # Integer microseconds keep "a sample exactly on a grid time" exact.
    times = [_micros(p.ts) for p in ordered]
    first = max(_micros(now - window), times[0])
    first_k = -(-first // step)  # ceiling division
    last_k = _micros(now) // step
    values = []
    for k in range(first_k, last_k + 1):
        index = bisect_right(times, k * step) - 1
        values.append(ordered[index].equity)
    return values


def simple_returns(values: Iterable[float]) -> list[float]:
    """Return E_i / E_(i-1) - 1 for consecutive values, skipping non-positive bases."""
    returns = []
    for previous, current in pairwise(values):
        if previous > 0:
            ratio = _finite(current / previous - 1.0)
            if ratio is not None:
                returns.append(ratio)
    return returns


def sharpe_ratio(
    returns: Sequence[float], *, periods_per_year: float, risk_free_rate: float = 0.0
) -> float | None:
    """Return mean(x) / stdev(x, ddof=1) * sqrt(periods_per_year), x = r - rf/periods.

    None with fewer than 2 returns or a zero deviation.
    """
    if len(returns) < 2:
        return None
    excess = [r - risk_free_rate / periods_per_year for r in returns]
    mean = sum(excess) / len(excess)
    deviation = math.sqrt(sum((x - mean) * (x - mean) for x in excess) / (len(excess) - 1))
    if not math.isfinite(deviation) or deviation < _ZERO_DEVIATION:
        return None
    return _finite(mean / deviation * math.sqrt(periods_per_year))


def sortino_ratio(
    returns: Sequence[float], *, periods_per_year: float, risk_free_rate: float = 0.0
) -> float | None:
    """Return mean(x) / downside deviation * sqrt(periods_per_year), x = r - rf/periods.

    Downside deviation is sqrt(mean(min(0, x)^2)) over all periods, gains counting
    as 0. None with fewer than 2 returns or no downside (flat equity, no losses).
    """
    if len(returns) < 2:
        return None
    excess = [r - risk_free_rate / periods_per_year for r in returns]
    mean = sum(excess) / len(excess)
    shortfalls = [min(0.0, x) for x in excess]
    downside = math.sqrt(sum(s * s for s in shortfalls) / len(excess))
    if not math.isfinite(downside) or downside < _ZERO_DEVIATION:
        return None
    return _finite(mean / downside * math.sqrt(periods_per_year))


def periodic_returns(
    points: Iterable[EquityPoint], now: datetime, period: timedelta, window: timedelta
) -> list[float]:
    """The returns of equity sampled every `period` over the trailing `window`."""
    return simple_returns(resample_equity(points, now, period=period, window=window))


def rolling_sharpe(
    points: Iterable[EquityPoint],
    now: datetime,
    *,
    period: timedelta = DEFAULT_RETURN_PERIOD,
    window: timedelta = DEFAULT_RETURN_WINDOW,
    risk_free_rate: float = 0.0,
) -> float | None:
    """Return the annualised Sharpe ratio of `period` returns over the trailing `window`."""
    returns = periodic_returns(points, now, period, window)
    return sharpe_ratio(returns, periods_per_year=YEAR / period, risk_free_rate=risk_free_rate)


def rolling_sortino(
    points: Iterable[EquityPoint],
    now: datetime,
    *,
    period: timedelta = DEFAULT_RETURN_PERIOD,
    window: timedelta = DEFAULT_RETURN_WINDOW,
    risk_free_rate: float = 0.0,
) -> float | None:
    """Return the annualised Sortino ratio of `period` returns over the trailing `window`."""
    returns = periodic_returns(points, now, period, window)
    return sortino_ratio(returns, periods_per_year=YEAR / period, risk_free_rate=risk_free_rate)
