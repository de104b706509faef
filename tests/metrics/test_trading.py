"""Derived trading metrics, checked against figures worked out by hand."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.trading import (
    METRICS,
    EquityPoint,
    Position,
    Side,
    Trade,
    consecutive_losses,
    daily_drawdown_pct,
    daily_pnl,
    derive_metrics,
    drawdown_pct,
    exposure_pct,
    iso_week_bounds,
    largest_position_pct,
    latest_equity,
    leverage,
    max_drawdown_pct,
    peak_equity,
    position_notionals,
    positions_from_trades,
    resample_equity,
    rolling_sharpe,
    rolling_sortino,
    sharpe_ratio,
    simple_returns,
    sortino_ratio,
    total_pnl,
    trade_count,
    trades_in_last,
    utc_day_bounds,
    weekly_drawdown_pct,
    weekly_pnl,
    win_rate_pct,
)

# 2024-01-01 is a Monday, so NOW (Wednesday noon) lies in the ISO week starting then.
NOW = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """Return a UTC time in January 2024 (day 0 is 2023-12-31, a Sunday)."""
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(
        days=day - 1, hours=hour, minutes=minute, seconds=second
    )


def point(ts: datetime, equity: float) -> EquityPoint:
    return EquityPoint(ts=ts, equity=equity)


def closed(ts: datetime, pnl: float, fee: float = 0.0) -> Trade:
    """A closing fill that reports its realised pnl."""
    return Trade(ts=ts, symbol="BTC/USDT", side="sell", quantity=1, price=100, pnl=pnl, fee=fee)


def opening(ts: datetime, fee: float = 0.0) -> Trade:
    """An opening fill: no pnl to report yet."""
    return Trade(ts=ts, symbol="BTC/USDT", side="buy", quantity=1, price=100, fee=fee)


def fill(symbol: str, side: Side, quantity: float, price: float, minute: int) -> Trade:
    return Trade(ts=at(3, 10, minute), symbol=symbol, side=side, quantity=quantity, price=price)


# --- equity and drawdown -------------------------------------------------------------


def test_it_reports_drawdown_from_the_running_peak() -> None:
    # peak 120, now 90: (120 - 90) / 120 = 25 %
    assert drawdown_pct([100, 120, 90]) == pytest.approx(25.0)
    assert peak_equity([100, 120, 90]) == 120


def test_it_reports_zero_drawdown_at_the_peak() -> None:
    # 130 is the newest and the highest value
    assert drawdown_pct([100, 110, 130]) == 0.0
    assert max_drawdown_pct([100, 110, 130]) == 0.0


def test_it_keeps_the_worst_drawdown_after_a_recovery() -> None:
    # 100 -> 80: (100 - 80) / 100 = 20 %; 120 -> 90: (120 - 90) / 120 = 25 %; back at a peak
    values = [100, 80, 120, 90, 130]

    assert max_drawdown_pct(values) == pytest.approx(25.0)
    assert drawdown_pct(values) == 0.0


def test_it_reports_a_total_loss_as_100_percent() -> None:
    # (100 - 0) / 100 = 100 %
    assert drawdown_pct([100, 0]) == pytest.approx(100.0)
    assert max_drawdown_pct([100, 0]) == pytest.approx(100.0)


def test_it_reports_negative_equity_beyond_100_percent() -> None:
    # (100 - (-50)) / 100 = 150 %
    assert drawdown_pct([100, -50]) == pytest.approx(150.0)


def test_it_leaves_drawdown_undefined_without_a_positive_peak() -> None:
    assert drawdown_pct([]) is None
    assert drawdown_pct([0, -10]) is None
    assert max_drawdown_pct([0, -10]) is None
    assert peak_equity([]) is None


def test_it_reports_no_drawdown_for_a_single_sample() -> None:
    assert drawdown_pct([100]) == 0.0
    assert max_drawdown_pct([100]) == 0.0


def test_it_takes_the_newest_equity_whatever_the_input_order() -> None:
    points = [point(at(3, 11), 95), point(at(3, 9), 100), point(at(3, 10), 90)]

    assert latest_equity(points) == 95
    assert latest_equity([]) is None


WEEK_OF_EQUITY = [
    point(at(0, 20), 150),  # Sunday: the week's opening equity
    point(at(1, 10), 140),  # Monday
    point(at(2, 23), 100),  # Tuesday close: today's opening equity
    point(at(3, 1), 110),  # Wednesday
    point(at(3, 10), 99),
    point(at(8, 1), 10),  # next Monday: outside this day and this week
]


def test_it_measures_daily_drawdown_from_todays_peak() -> None:
    # today: opening 100, then 110, 99 -> peak 110: (110 - 99) / 110 = 10 %
    assert daily_drawdown_pct(WEEK_OF_EQUITY, NOW) == pytest.approx(10.0)


def test_it_measures_weekly_drawdown_from_the_weeks_peak() -> None:
    # week: opening 150 (Sunday), 140, 100, 110, 99 -> (150 - 99) / 150 = 34 %
    assert weekly_drawdown_pct(WEEK_OF_EQUITY, NOW) == pytest.approx(34.0)


def test_it_counts_the_previous_close_as_the_days_opening_equity() -> None:
    # yesterday closed at 100, first sample today 95: (100 - 95) / 100 = 5 %
    points = [point(at(2, 23), 100), point(at(3, 0, 30), 95)]

    assert daily_drawdown_pct(points, NOW) == pytest.approx(5.0)


def test_it_reports_no_daily_drawdown_when_equity_did_not_move_today() -> None:
    # only yesterday's close: the day opened at 100 and is still there
    assert daily_drawdown_pct([point(at(2, 23), 100)], NOW) == 0.0
    assert daily_drawdown_pct([], NOW) is None


def test_it_bounds_days_and_weeks_in_utc() -> None:
    # 01:00 at UTC+2 on Wednesday is 23:00 UTC on Tuesday
    now = datetime(2024, 1, 3, 1, 0, tzinfo=timezone(timedelta(hours=2)))

    assert utc_day_bounds(now) == (at(2), at(3))
    assert iso_week_bounds(NOW) == (at(1), at(8))
    # Sunday belongs to the week that began the Monday before
    assert iso_week_bounds(at(7, 23, 59)) == (at(1), at(8))


# --- PnL, win rate, losing streaks ---------------------------------------------------

WEEK_OF_TRADES = [
    closed(at(0, 12), pnl=50, fee=1),  # last week (Sunday): net 49
    closed(at(1, 0), pnl=-20, fee=1),  # Monday 00:00, first instant of the week: net -21
    closed(at(3, 9), pnl=30, fee=2),  # today: net 28
    opening(at(3, 11), fee=0.5),  # today, opening fill: net -0.5
]


def test_it_sums_net_pnl_of_today() -> None:
    # 28 - 0.5 = 27.5
    assert daily_pnl(WEEK_OF_TRADES, NOW) == pytest.approx(27.5)


def test_it_sums_net_pnl_of_the_iso_week() -> None:
    # -21 + 28 - 0.5 = 6.5
    assert weekly_pnl(WEEK_OF_TRADES, NOW) == pytest.approx(6.5)


def test_it_sums_net_pnl_of_all_trades() -> None:
    # 49 - 21 + 28 - 0.5 = 55.5
    assert total_pnl(WEEK_OF_TRADES) == pytest.approx(55.5)
    assert trade_count(WEEK_OF_TRADES) == 4


def test_it_reports_zero_pnl_without_trades() -> None:
    assert daily_pnl([], NOW) == 0.0
    assert total_pnl([]) == 0.0
    assert trade_count([]) == 0


def test_it_excludes_the_first_instant_of_tomorrow_from_today() -> None:
    trades = [closed(at(3), pnl=5), closed(at(4), pnl=7)]

    # [Wed 00:00, Thu 00:00): only the first
    assert daily_pnl(trades, NOW) == 5


def test_it_rates_wins_among_trades_with_a_pnl() -> None:
    trades = [
        closed(at(3, 1), pnl=10),  # win
        closed(at(3, 2), pnl=-5),  # loss
        closed(at(3, 3), pnl=0),  # scratch: not a win
        closed(at(3, 4), pnl=0.5, fee=1),  # net -0.5: a loss
        opening(at(3, 5), fee=1),  # no pnl: not counted
    ]

    # 1 win / 4 trades with a pnl = 25 %
    assert win_rate_pct(trades) == pytest.approx(25.0)


def test_it_rates_all_wins_and_all_losses() -> None:
    assert win_rate_pct([closed(at(3, 1), 10), closed(at(3, 2), 3)]) == 100.0
    assert win_rate_pct([closed(at(3, 1), -10), closed(at(3, 2), -3)]) == 0.0


def test_it_leaves_win_rate_undefined_without_closed_trades() -> None:
    assert win_rate_pct([]) is None
    assert win_rate_pct([opening(at(3, 1), fee=1)]) is None


def test_it_counts_the_trailing_losing_run_skipping_opening_fills() -> None:
    trades = [
        closed(at(3, 1), pnl=10),
        closed(at(3, 2), pnl=-1),
        closed(at(3, 3), pnl=-2),
        opening(at(3, 4), fee=1),  # closes nothing: neither extends nor ends the run
        closed(at(3, 5), pnl=-3),
    ]

    # -1, -2, -3 after the win
    assert consecutive_losses(trades) == 3
    assert consecutive_losses(random.Random(4).sample(trades, len(trades))) == 3


def test_it_ends_a_losing_run_at_a_scratch_trade() -> None:
    trades = [closed(at(3, 1), -1), closed(at(3, 2), 0), closed(at(3, 3), -2)]

    # only the -2 after the scratch
    assert consecutive_losses(trades) == 1


def test_it_counts_no_losing_run_after_a_win_or_without_trades() -> None:
    assert consecutive_losses([closed(at(3, 1), -1), closed(at(3, 2), 1)]) == 0
    assert consecutive_losses([]) == 0
    # all losses: the whole history is the run
    assert consecutive_losses([closed(at(3, h), -1) for h in range(4)]) == 4


def test_it_counts_trades_in_the_last_five_minutes() -> None:
    trades = [
        opening(NOW - timedelta(minutes=5)),  # exactly 5 min ago: outside (now - 5m, now]
        opening(NOW - timedelta(minutes=4, seconds=59)),
        opening(NOW),
        opening(NOW + timedelta(seconds=1)),  # after now
    ]

    assert trades_in_last(trades, NOW) == 2


# --- positions -----------------------------------------------------------------------


def test_it_folds_fills_into_net_positions() -> None:
    trades = [
        fill("BTC", "buy", 1.0, 100, minute=1),
        fill("BTC", "buy", 0.5, 110, minute=2),
        fill("BTC", "sell", 0.3, 120, minute=3),
        fill("ETH", "sell", 2.0, 50, minute=4),
        fill("SOL", "buy", 0.1, 20, minute=5),
        fill("SOL", "buy", 0.2, 21, minute=6),
        fill("SOL", "sell", 0.3, 22, minute=7),  # 0.1 + 0.2 - 0.3: flat, float residue
    ]

    positions = positions_from_trades(reversed(trades))

    # BTC 1 + 0.5 - 0.3 = 1.2 marked at the last fill, 120; ETH sold short
    assert positions.keys() == {"BTC", "ETH"}
    assert positions["BTC"].quantity == pytest.approx(1.2)
    assert positions["BTC"].last_price == 120
    assert positions["ETH"] == Position(quantity=-2.0, last_price=50)
    # 1.2 x 120 = 144; -2 x 50 = -100
    assert position_notionals(positions) == pytest.approx({"BTC": 144.0, "ETH": -100.0})


def test_it_measures_concentration_exposure_and_leverage() -> None:
    notionals = {"BTC": 144.0, "ETH": -100.0}

    # largest |144| / 1000 = 14.4 %; gross (144 + 100) / 1000 = 24.4 %, 0.244x
    assert largest_position_pct(notionals, 1000) == pytest.approx(14.4)
    assert exposure_pct(notionals, 1000) == pytest.approx(24.4)
    assert leverage(notionals, 1000) == pytest.approx(0.244)
    # 3,000 of positions on 1,000 of equity: 300 %, 3x
    assert leverage({"BTC": 2000.0, "ETH": -1000.0}, 1000) == pytest.approx(3.0)


def test_it_reports_no_concentration_without_positions() -> None:
    assert largest_position_pct({}, 1000) == 0.0
    assert exposure_pct({}, 1000) == 0.0


def test_it_leaves_position_ratios_undefined_without_positive_equity() -> None:
    for equity in (0.0, -10.0):
        assert largest_position_pct({"BTC": 1.0}, equity) is None
        assert exposure_pct({"BTC": 1.0}, equity) is None
        assert leverage({"BTC": 1.0}, equity) is None


# --- Sharpe and Sortino --------------------------------------------------------------

RETURNS = [0.01, -0.01, 0.02, 0.0]


def test_it_computes_sharpe_with_sample_deviation() -> None:
    # mean 0.02 / 4 = 0.005; deviations 0.005, -0.015, 0.015, -0.005;
    # squares sum 5e-4, / (4 - 1) -> sd sqrt(5e-4 / 3); 0.005 / sd = sqrt(0.15); x sqrt(4)
    assert sharpe_ratio(RETURNS, periods_per_year=4) == pytest.approx(math.sqrt(0.6))


def test_it_computes_sortino_with_downside_over_all_periods() -> None:
    # shortfalls 0, -0.01, 0, 0: sqrt(1e-4 / 4) = 0.005; 0.005 / 0.005 x sqrt(4) = 2
    assert sortino_ratio(RETURNS, periods_per_year=4) == pytest.approx(2.0)


def test_it_subtracts_the_risk_free_rate_per_period() -> None:
    # 4 % a year over 4 periods = 1 % each: excess 0, -0.02, 0.01, -0.01, mean -0.005
    # Sharpe: same deviation as above -> -sqrt(0.6)
    # Sortino: shortfalls -0.02, -0.01: sqrt(5e-4 / 4) = sqrt(1.25e-4);
    #   -0.005 / sqrt(1.25e-4) x 2 = -2 / sqrt(5)
    assert sharpe_ratio(RETURNS, periods_per_year=4, risk_free_rate=0.04) == pytest.approx(
        -math.sqrt(0.6)
    )
    assert sortino_ratio(RETURNS, periods_per_year=4, risk_free_rate=0.04) == pytest.approx(
        -2 / math.sqrt(5)
    )


def test_it_leaves_ratios_undefined_without_enough_returns_or_deviation() -> None:
    assert sharpe_ratio([], periods_per_year=4) is None
    assert sharpe_ratio([0.01], periods_per_year=4) is None
    assert sortino_ratio([0.01], periods_per_year=4) is None
    # flat equity: no deviation at all
    assert sharpe_ratio([0.0, 0.0, 0.0], periods_per_year=4) is None
    assert sortino_ratio([0.0, 0.0, 0.0], periods_per_year=4) is None
    # all gains: Sharpe is defined, Sortino has no downside
    assert sharpe_ratio([0.01, 0.03], periods_per_year=4) is not None
    assert sortino_ratio([0.01, 0.03], periods_per_year=4) is None


HOURLY_EQUITY = [
    point(at(3, 12), 108.9),
    point(at(3, 9), 100),
    point(at(3, 10), 110),
    point(at(3, 10, 30), 130),  # between grid hours: never sampled
    point(at(3, 11), 99),  # exactly on the grid hour: sampled there
]


def test_it_samples_equity_on_the_hourly_grid() -> None:
    now = at(3, 12, 10)

    # grid hours 09:00, 10:00, 11:00, 12:00, each the last value at or before it
    assert resample_equity(HOURLY_EQUITY, now) == [100, 110, 99, 108.9]
    # window 2 h: from 10:10, so 11:00 and 12:00
    assert resample_equity(HOURLY_EQUITY, now, window=timedelta(hours=2)) == [99, 108.9]


def test_it_annualises_hourly_ratios_over_a_365_day_year() -> None:
    now = at(3, 12, 10)

    # 100 -> 110 -> 99 -> 108.9: returns +10 %, -10 %, +10 %, mean 0.1 / 3
    #   deviations 0.2/3, -0.4/3, 0.2/3 -> squares sum 0.24 / 9, / (3 - 1) -> sd = sqrt(0.04 / 3)
    #   mean / sd = (0.1 / 3) / sqrt(0.04 / 3) = 1 / sqrt(12); x sqrt(365 x 24) = sqrt(730)
    assert rolling_sharpe(HOURLY_EQUITY, now) == pytest.approx(math.sqrt(730))
    # downside sqrt(0.01 / 3); mean / downside = 1 / sqrt(3); x sqrt(8760) = sqrt(2920)
    assert rolling_sortino(HOURLY_EQUITY, now) == pytest.approx(math.sqrt(2920))
    # 2 h window: one return only
    assert rolling_sharpe(HOURLY_EQUITY, now, window=timedelta(hours=2)) is None


def test_it_skips_returns_from_zero_equity() -> None:
    # 100 -> 0 is -100 %; 0 -> 50 has no base
    assert simple_returns([100, 0, 50]) == [-1.0]


def test_it_rejects_a_period_that_would_sample_without_bound() -> None:
    with pytest.raises(ValueError, match="period"):
        resample_equity(HOURLY_EQUITY, NOW, period=timedelta(microseconds=1))


# --- derive_metrics ------------------------------------------------------------------


def test_it_derives_only_what_trades_define_without_equity() -> None:
    assert derive_metrics(trades=[], equity_points=[], now=NOW) == {
        "daily_pnl": 0.0,
        "weekly_pnl": 0.0,
        "total_pnl": 0.0,
        "trade_count": 0.0,
        "consecutive_losses": 0.0,
        "trades_last_5m": 0.0,
    }


def test_it_derives_every_metric_from_a_small_history() -> None:
    trades = [
        Trade(ts=at(3, 9), symbol="BTC", side="buy", quantity=2, price=100, fee=1),
        Trade(ts=at(3, 10), symbol="BTC", side="sell", quantity=1, price=110, pnl=10, fee=1),
        Trade(ts=at(3, 11, 58), symbol="ETH", side="sell", quantity=4, price=20, pnl=-6, fee=0),
    ]
    points = [point(at(3, 9), 1000), point(at(3, 10), 1010), point(at(3, 11), 1004)]

    metrics = derive_metrics(trades=trades, equity_points=points, now=NOW)

    assert metrics == pytest.approx(
        {
            "equity": 1004.0,
            "peak_equity": 1010.0,
            "drawdown_pct": 6 / 1010 * 100,  # (1010 - 1004) / 1010 = 0.594 %
            "max_drawdown_pct": 6 / 1010 * 100,
            "daily_drawdown_pct": 6 / 1010 * 100,  # all of it today
            "weekly_drawdown_pct": 6 / 1010 * 100,
            "daily_pnl": 2.0,  # -1 + (10 - 1) + (-6) = 2
            "weekly_pnl": 2.0,
            "total_pnl": 2.0,
            "win_rate_pct": 50.0,  # 1 win (net 9) of 2 with a pnl
            "trade_count": 3.0,
            "consecutive_losses": 1.0,  # the ETH -6
            "trades_last_5m": 1.0,  # 11:58 only
            # BTC 2 - 1 = 1 @ 110 = 110; ETH -4 @ 20 = -80
            "largest_position_pct": 110 / 1004 * 100,  # 10.96 %
            "exposure_pct": 190 / 1004 * 100,  # (110 + 80) / 1004 = 18.92 %
            "leverage": 190 / 1004,
            # grid 09:00, 10:00, 11:00, 12:00: 1000, 1010, 1004, 1004
            # returns 0.01, -6/1010, 0: mean m, Sharpe m / sd x sqrt(8760)
            "sharpe_ratio": _sharpe([0.01, -6 / 1010, 0.0], 8760),
            # shortfall only -6/1010: downside sqrt((6/1010)^2 / 3)
            "sortino_ratio": (0.01 - 6 / 1010) / 3 / ((6 / 1010) / math.sqrt(3)) * math.sqrt(8760),
        }
    )


def _sharpe(returns: list[float], periods: float) -> float:
    """The textbook formula, spelled out independently of the module."""
    n = len(returns)
    mean = sum(returns) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1))
    return mean / sd * math.sqrt(periods)


def test_it_prefers_given_notionals_over_positions_from_trades() -> None:
    trades = [Trade(ts=at(3, 9), symbol="BTC", side="buy", quantity=1, price=100)]

    metrics = derive_metrics(
        trades=trades, equity_points=[point(at(3, 9), 500)], now=NOW, notionals={"BTC": 250.0}
    )

    # marked at 250 instead of the fill's 100: 250 / 500 = 50 %
    assert metrics["largest_position_pct"] == pytest.approx(50.0)


def test_it_omits_ratios_on_flat_equity_and_position_ratios_at_zero_equity() -> None:
    points = [point(at(3, h), 100.0) for h in range(6, 11)]
    flat = derive_metrics(trades=[], equity_points=points, now=NOW)

    assert "sharpe_ratio" not in flat
    assert "sortino_ratio" not in flat
    assert flat["drawdown_pct"] == 0.0

    broke = derive_metrics(trades=[], equity_points=[*points, point(at(3, 11), 0.0)], now=NOW)

    assert broke["drawdown_pct"] == 100.0
    assert "leverage" not in broke
    assert "largest_position_pct" not in broke


def test_it_rejects_naive_timestamps() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        EquityPoint(ts=datetime(2024, 1, 3, 12), equity=100)
    with pytest.raises(ValueError, match="finite"):
        EquityPoint(ts=NOW, equity=math.nan)


# --- properties ----------------------------------------------------------------------

positive_equity = st.lists(st.floats(min_value=1e-6, max_value=1e12), min_size=1, max_size=50)
any_float = st.floats(allow_nan=False, allow_infinity=False)
times = st.datetimes(
    min_value=datetime(2023, 12, 1), max_value=datetime(2024, 1, 10), timezones=st.just(UTC)
)
trades_strategy = st.lists(
    st.builds(
        Trade,
        ts=times,
        symbol=st.sampled_from(["BTC", "ETH"]),
        side=st.sampled_from(["buy", "sell"]),
        quantity=st.floats(min_value=0, max_value=1e300),
        price=st.floats(min_value=0, max_value=1e300),
        pnl=st.none() | any_float,
        fee=any_float,
    ),
    max_size=30,
)
points_strategy = st.lists(st.builds(EquityPoint, ts=times, equity=any_float), max_size=30)


@given(positive_equity)
def test_it_keeps_drawdown_of_positive_equity_within_0_and_100(values: list[float]) -> None:
    current = drawdown_pct(values)
    worst = max_drawdown_pct(values)

    assert current is not None
    assert worst is not None
    assert 0.0 <= current <= worst <= 100.0


@given(trades_strategy)
def test_it_keeps_win_rate_within_0_and_100(trades: list[Trade]) -> None:
    rate = win_rate_pct(trades)

    assert rate is None or 0.0 <= rate <= 100.0
    assert 0 <= consecutive_losses(trades) <= trade_count(trades)


@given(st.lists(st.floats(min_value=-0.99, max_value=10), max_size=40))
def test_it_never_reports_a_ratio_with_a_wrong_sign(returns: list[float]) -> None:
    sharpe = sharpe_ratio(returns, periods_per_year=8760)
    sortino = sortino_ratio(returns, periods_per_year=8760)

    for ratio in (sharpe, sortino):
        assert ratio is None or math.isfinite(ratio)
        if ratio is not None and ratio != 0:
            assert (ratio > 0) == (sum(returns) > 0)


@given(trades_strategy, points_strategy, times)
def test_it_never_derives_nan_or_infinity(
    trades: list[Trade], points: list[EquityPoint], now: datetime
) -> None:
    metrics = derive_metrics(trades=trades, equity_points=points, now=now)

    assert metrics.keys() <= METRICS.keys()
    assert all(math.isfinite(value) for value in metrics.values())
    if points:
        assert "equity" in metrics


def test_it_derives_no_position_metrics_from_equity_alone() -> None:
    # A bot reporting equity and its own leverage, but no trades: positions are
    # unknown, and a derived leverage of 0 would overwrite the one it reported.
    derived = derive_metrics(
        trades=[], equity_points=[point(NOW - timedelta(minutes=1), 1000.0)], now=NOW
    )

    assert "equity" in derived
    assert not {"leverage", "exposure_pct", "largest_position_pct"} & set(derived)
