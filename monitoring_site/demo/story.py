"""The demo's story: six simulated systems, what each sends when, and what should fire.

What fires is decided by Tradewatch's built-in trading rule pack (alerts/rulepacks),
read for this story:

* drawdown rules (`Drawdown` WARNING > 10 % clearing under 8, EMERGENCY > 20 % clearing
  under 18; `Daily drawdown` WARNING > 5 % clearing under 4; `Weekly drawdown` ERROR
  > 10 % clearing under 8) judge the drawdown Tradewatch derives from the equity a bot
  sends, on arrival. The slide's waypoints sit on ticks and each segment crosses no
  threshold between two of them, so every threshold is crossed exactly at the tick
  that announces it; the equity history sent first never rises above the starting
  equity, so the peak is where the story starts.
* event rules (circuit breaker, kill switch, model crashed, connectivity lost: 15-minute
  windows; model recovered: 5 minutes) fire on the first event, on arrival, and keep
  firing for their window: they do not resolve within the demo.
* `Exchange latency p99` is the nearest-rank p99 of `exchange_latency_ms` over 5 minutes,
  i.e. the largest sample while there are fewer than 100: one sample over 5,000 ms fires.
* `Heartbeat lapsed` is judged on time alone, by beat's evaluation of every source
  (every 15 s): it fires at the first evaluation after the last heartbeat plus the
  source's period and grace, which this story shortens for its hanging bot.
* What must *not* fire anywhere: `Unusual trading activity` (more than 10 fills in 5
  minutes: the healthy bot trades every 30 wall-clock seconds, at any pace), `Low win
  rate` (from 10 trades), `Losing streak` (10 losses), `Daily loss limit` (1,000),
  position concentration (40 % of equity) and leverage (3x).
"""

from __future__ import annotations

import math
from typing import Final

from alerts.engine import Severity

from .scenario import (
    ARRIVAL_ALLOWANCE_SECONDS,
    TICK,
    Curve,
    Event,
    Expect,
    Fill,
    Item,
    Scenario,
    Series,
    Step,
    System,
)

# Tradewatch's beat evaluates every source this often (monitoring_site/schedule.py):
# what time-based rules (a lapsed heartbeat) wait for.
BEAT_EVALUATION_SECONDS: Final = 15.0
# The healthy bot trades this often in wall-clock seconds whatever the pace: faster, it
# would be unusual trading (more than 10 fills in 5 minutes).
HEALTHY_TRADE_SECONDS: Final = 30.0
# The shortened heartbeat period and grace of the hanging bot, wall-clock seconds at any
# pace: short enough for its lapse to show within the minute, long enough that a tick
# delayed on a busy machine is not mistaken for one.
LAPSE_PERIOD: Final = 5.0
LAPSE_GRACE: Final = 5.0


def demo_story(pace: float = 1.0) -> Scenario:
    """The demo's six systems; pace 2 tells the story twice as fast."""
    return Scenario(pace, _systems(pace))


def _systems(pace: float) -> tuple[System, ...]:
    """The six systems of the demo."""
    return (
        _healthy(pace),
        _drawdown(),
        _model(),
        _heartbeat(pace),
        _exchange(),
        _breaker(),
    )


def _round_trip(prefix: str, at: float) -> tuple[tuple[float, Item], ...]:
    """A small winning trade (opened and closed at once): the bot is seen trading."""
    return (
        (at, Fill(f"{prefix}-1-open", "SOL/USDT", "buy", 5.0, 150.0, fee=0.2)),
        (at, Fill(f"{prefix}-1-close", "SOL/USDT", "sell", 5.0, 151.0, pnl=5.0, fee=0.2)),
    )


def _healthy(pace: float) -> System:
    return System(
        name="demo-healthy",
        kind="bot",
        role="a healthy bot: steady equity, heartbeats, a winning trade now and then",
        series=(
            Series(
                "equity",
                Curve(((0.0, 10_000.0), (600.0, 10_240.0))),
                noise=0.0005,
                history_rise=0.03,
            ),
        ),
        trade_every=HEALTHY_TRADE_SECONDS * pace,
        fill=_healthy_fill,
        steps=(Step(0.0, "steady equity, a heartbeat every tick, a winning trade every 30 s"),),
        seed=1.0,
    )


DRAWDOWN_EQUITY: Final = Curve(
    (
        (0.0, 10_000.0),
        (6.0, 10_000.0),
        (12.0, 9_450.0),  # 5.5 %
        (16.0, 8_900.0),  # 11 %
        (22.0, 7_850.0),  # 21.5 %
        (70.0, 7_850.0),
        (80.0, 10_050.0),  # a new peak
    )
)


def _down(moment: float) -> str:
    equity = DRAWDOWN_EQUITY.at(moment)
    return f"equity {equity:,.0f}, down {(1 - equity / 10_000.0) * 100:.1f} % from its peak"


def _drawdown() -> System:
    return System(
        name="demo-drawdown",
        kind="bot",
        role="a bot whose equity slides into a 10 % then 20 % drawdown, then recovers",
        series=(Series("equity", DRAWDOWN_EQUITY, history_rise=0.06),),
        once=_round_trip("d", 0.0),
        settles=DRAWDOWN_EQUITY.points[-1][0],
        steps=(
            Step(6.0, "equity starts to slide from its peak of 10,000", note="nothing yet"),
            Step(12.0, _down(12.0), (Expect("Daily drawdown", Severity.WARNING),)),
            Step(
                16.0,
                _down(16.0),
                (Expect("Drawdown", Severity.WARNING), Expect("Weekly drawdown", Severity.ERROR)),
            ),
            Step(22.0, _down(22.0), (Expect("Drawdown", Severity.EMERGENCY),)),
            Step(
                70.0,
                "equity recovers, to a new peak of 10,050",
                (
                    Expect("Drawdown", Severity.EMERGENCY, "resolved", within=20.0),
                    Expect("Daily drawdown", Severity.WARNING, "resolved", within=20.0),
                    Expect("Weekly drawdown", Severity.ERROR, "resolved", within=20.0),
                ),
            ),
        ),
        seed=2.0,
    )


def _model() -> System:
    crashed = Event(
        "model_crashed", "inference worker killed (out of memory)", (("exit_code", 137.0),)
    )
    return System(
        name="demo-model",
        kind="model",
        role="an LLM trading model that crashes and recovers",
        heartbeats=((0.0, 10.0, "ok"), (10.0, 12.0, "error"), (30.0, math.inf, "ok")),
        once=(
            (2.0, Event("decision", "rebalance", (("confidence", 0.7),))),
            (10.0, crashed),
            (30.0, Event("model_recovered", "restarted from the last checkpoint")),
            *((at, Event("decision", "hold", (("confidence", 0.6),))) for at in (40.0, 60.0)),
        ),
        steps=(
            Step(
                10.0,
                "crashes (its inference worker is killed)",
                (Expect("Model crashed", Severity.CRITICAL),),
            ),
            Step(
                30.0,
                "restarts and recovers",
                (Expect("Model recovered", Severity.INFO),),
                note="(Model crashed keeps firing for its 15-minute window)",
            ),
        ),
        seed=3.0,
    )


def _heartbeat(pace: float) -> System:
    period, grace = LAPSE_PERIOD, LAPSE_GRACE
    # The last heartbeat goes out one tick before the step; the lapse is judged by
    # beat's evaluation of every source, the first one after period + grace.
    within = TICK / pace + period + grace + BEAT_EVALUATION_SECONDS + ARRIVAL_ALLOWANCE_SECONDS
    return System(
        name="demo-heartbeat",
        kind="bot",
        role="a bot that hangs: its heartbeats stop",
        series=(
            Series(
                "equity",
                Curve(((0.0, 10_000.0),)),
                active=((0.0, 8.0),),
                noise=0.0005,
                history_rise=0.01,
            ),
        ),
        heartbeats=((0.0, 8.0, "ok"),),
        once=_round_trip("s", 2.0),
        steps=(
            Step(
                8.0,
                f"hangs: no more heartbeats (period {period:g} s + grace {grace:g} s)",
                (Expect("Heartbeat lapsed", Severity.CRITICAL, within=within),),
                note=f"within {within - ARRIVAL_ALLOWANCE_SECONDS:.0f} s "
                f"(beat checks every {BEAT_EVALUATION_SECONDS:.0f} s)",
            ),
        ),
        heartbeat_period=period,
        heartbeat_grace=grace,
        seed=4.0,
    )


EXCHANGE_LATENCY: Final = Curve(
    (
        (0.0, 150.0),
        (2.0, 600.0),
        (4.0, 1_800.0),
        (6.0, 5_600.0),  # over 5 s: the p99 of the window
        (12.0, 7_000.0),
        (50.0, 160.0),  # reconnected
    )
)


def _exchange() -> System:
    venue = (("exchange", "binance"),)
    return System(
        name="demo-exchange",
        kind="exchange",
        role="an exchange connection: latency rises, then the connection is lost",
        series=(
            Series("exchange_latency_ms", EXCHANGE_LATENCY, active=((0.0, 12.0), (50.0, math.inf))),
        ),
        heartbeats=((0.0, 12.0, "ok"), (12.0, 50.0, "degraded"), (50.0, math.inf, "ok")),
        once=(
            (12.0, Event("connectivity_lost", "websocket closed (1006), reconnecting", venue)),
            (50.0, Event("connectivity_restored", "websocket reconnected", venue)),
        ),
        steps=(
            Step(0.0, "round trips start to slow down, from 150 ms", note="nothing yet"),
            Step(
                6.0,
                "round trips take 5.6 s (p99 over 5 s)",
                (Expect("Exchange latency p99", Severity.WARNING),),
            ),
            Step(12.0, "connection lost", (Expect("Exchange connectivity lost", Severity.ERROR),)),
            Step(
                50.0,
                "reconnected, round trips back to 160 ms",
                note="its alerts keep firing for their windows (5 and 15 minutes)",
            ),
        ),
        seed=5.0,
    )


def _breaker() -> System:
    # Half an ETH a trade: 16 % of equity, well under the concentration limit (40 %).
    quantity = 0.5
    losses = ((0.0, -120.0, 3_200.0), (2.0, -150.0, 3_170.0), (4.0, -130.0, 3_145.0))
    fills: list[tuple[float, Item]] = []
    for number, (at, pnl, price) in enumerate(losses, start=1):
        fills.append((at, Fill(f"b-{number}-open", "ETH/USDT", "buy", quantity, price, fee=0.5)))
        closing = price + pnl / quantity
        fills.append(
            (at, Fill(f"b-{number}-close", "ETH/USDT", "sell", quantity, closing, pnl, 0.5))
        )
    return System(
        name="demo-breaker",
        kind="bot",
        role="a bot whose losses trip its circuit breaker, then its kill switch",
        series=(
            Series(
                "equity",
                Curve(((0.0, 9_880.0), (2.0, 9_730.0), (4.0, 9_600.0))),
                noise=0.0003,
                history_rise=0.02,
            ),
        ),
        heartbeats=((0.0, 4.0, "ok"), (4.0, math.inf, "degraded")),
        once=(
            *fills,
            (
                4.0,
                Event(
                    "circuit_breaker_tripped",
                    "3 losing trades in a row, -4 % today",
                    (("losses", 3.0),),
                ),
            ),
            (14.0, Event("kill_switch_activated", "risk desk halted trading")),
        ),
        steps=(
            Step(
                0.0,
                "loses on its trades, one every tick",
                note="nothing yet (a losing streak alerts at 10)",
            ),
            Step(
                4.0,
                "its circuit breaker trips on the third loss in a row (-4 % today)",
                (Expect("Circuit breaker tripped", Severity.CRITICAL),),
            ),
            Step(
                14.0,
                "its kill switch is activated",
                (Expect("Kill switch activated", Severity.CRITICAL),),
            ),
        ),
        seed=6.0,
    )


def _healthy_fill(index: int) -> Fill:
    """The healthy bot's trades: an opening buy, then a sell that closes it at a profit."""
    if index % 2 == 0:
        return Fill(f"h-{index}", "BTC/USDT", "buy", 0.02, 64_000.0, fee=0.5)
    return Fill(f"h-{index}", "BTC/USDT", "sell", 0.02, 64_400.0, pnl=8.0, fee=0.5)
