"""The demo's story: six simulated systems, what each sends when, and what should fire.

Pure: no Django, no I/O, no clock. Times are *scenario seconds* from the start of the
story; `Scenario.seconds` turns them into wall-clock seconds at the chosen pace (pace 2
tells the same story twice as fast). Every system sends every `TICK` scenario seconds;
what it sends at a tick is a function of the tick's time alone, so a pace always sends
the same values, and `tests/monitoring_site/test_demo_scenario.py` can run the story
through the pack's rules without a server.

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
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Literal

from alerts.engine import Severity

# Scenario seconds between two sends to every system.
TICK: Final = 2.0
# Equity history sent before the story starts, so the charts have a past.
HISTORY_SECONDS: Final = 6 * 3600.0
HISTORY_STEP: Final = 60.0
# Tradewatch's beat evaluates every source this often (monitoring_site/schedule.py):
# what time-based rules (a lapsed heartbeat) wait for.
BEAT_EVALUATION_SECONDS: Final = 15.0
# How long an alert judged on arrival may take to show (derivation and evaluation run
# in the worker; a busy machine is slower).
ARRIVAL_ALLOWANCE_SECONDS: Final = 10.0
# The healthy bot trades this often in wall-clock seconds whatever the pace: faster, it
# would be unusual trading (more than 10 fills in 5 minutes).
HEALTHY_TRADE_SECONDS: Final = 30.0
# The shortened heartbeat period and grace of the hanging bot, wall-clock seconds at any
# pace: short enough for its lapse to show within the minute, long enough that a tick
# delayed on a busy machine is not mistaken for one.
LAPSE_PERIOD: Final = 5.0
LAPSE_GRACE: Final = 5.0
MIN_PACE: Final = 0.1
MAX_PACE: Final = 8.0

Change = Literal["firing", "resolved"]


# --- what a system sends -------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A metric sample; `at`: wall-clock seconds from the start for history (negative),
    None for now."""

    name: str
    value: float
    at: float | None = None


@dataclass(frozen=True)
class Fill:
    """A trade (one fill); `pnl` only on closing fills."""

    id: str
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float
    price: float
    pnl: float | None = None
    fee: float = 0.0


@dataclass(frozen=True)
class Heartbeat:
    status: str = "ok"


@dataclass(frozen=True)
class Event:
    type: str
    message: str = ""
    context: tuple[tuple[str, str | float], ...] = ()


Item = Metric | Fill | Heartbeat | Event


# --- what should fire ----------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """An alert change the demo announces: `rule` (the pack's rule name) at `severity`
    starts firing (or is raised to it) on the step's source, or the rule's alert resolves.
    `within`: wall-clock seconds after the step by which it should show."""

    rule: str
    severity: Severity
    change: Change = "firing"
    within: float = ARRIVAL_ALLOWANCE_SECONDS

    def __str__(self) -> str:
        if self.change == "resolved":
            return f"{self.rule} resolved"
        return f"{self.rule} {self.severity.name}"


@dataclass(frozen=True)
class Step:
    """A moment of the story worth a line: what the system does, and what should follow."""

    at: float
    says: str
    expects: tuple[Expect, ...] = ()
    # Printed after the expectations (or instead of them, when there are none).
    note: str = ""


@dataclass(frozen=True)
class Announcement:
    """A step of one system, as the demo prints it."""

    source: str
    step: Step

    @property
    def at(self) -> float:
        return self.step.at

    def line(self) -> str:
        """`demo-drawdown: equity down 11.0 % -> expect Drawdown WARNING, ...`."""
        step = self.step
        text = f"{self.source}: {step.says}"
        if step.expects:
            text += " -> expect " + ", ".join(str(expect) for expect in step.expects)
            return f"{text} {step.note}".rstrip()
        return f"{text} -> {step.note or 'nothing should fire'}"


# --- shapes of values over time --------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """A value over scenario time: linear between waypoints, held before and after."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        times = [at for at, _ in self.points]
        if not times or times != sorted(times):
            raise ValueError("a curve needs waypoints in time order")

    def at(self, moment: float) -> float:
        points = self.points
        if moment <= points[0][0]:
            return points[0][1]
        for (start, low), (end, high) in pairwise(points):
            if moment <= end:
                if end == start:
                    return high
                return low + (high - low) * (moment - start) / (end - start)
        return points[-1][1]


def wiggle(moment: float, seed: float) -> float:
    """Deterministic noise in [-1, 1]: two slow waves, different for each seed."""
    return 0.6 * math.sin(moment / 7.0 + seed) + 0.4 * math.sin(moment / 2.3 + 2.0 * seed)


def _within(moment: float, spans: Sequence[tuple[float, float]]) -> bool:
    return any(start <= moment < end for start, end in spans)


ALWAYS: Final = ((0.0, math.inf),)


@dataclass(frozen=True)
class Series:
    """A metric a system reports at every tick in `active` spans (start inclusive)."""

    name: str
    curve: Curve
    active: tuple[tuple[float, float], ...] = ALWAYS
    # Relative amplitude of the noise on live values (0: exactly the curve).
    noise: float = 0.0
    # Rise over the history sent before the story (0.05: 5 % lower 6 hours ago);
    # None: no history.
    history_rise: float | None = None

    def value(self, moment: float, seed: float) -> float:
        base = self.curve.at(moment)
        return base * (1.0 + self.noise * wiggle(moment, seed))

    def history(self, seed: float) -> list[Metric]:
        """One sample a minute over the past `HISTORY_SECONDS`, rising to the start value
        and never above it (its drawdown stays under 1 %)."""
        if self.history_rise is None:
            return []
        start = self.curve.at(0.0)
        samples = []
        count = int(HISTORY_SECONDS // HISTORY_STEP)
        for index in range(count, 0, -1):
            moment = -index * HISTORY_STEP
            behind = index / count  # 1 six hours ago, towards 0 at the start
            dip = 0.002 * (1.0 + wiggle(moment / 60.0, seed))  # 0 to 0.4 % under the trend
            value = start * (1.0 - self.history_rise * behind - dip)
            samples.append(Metric(self.name, round(value, 2), at=moment))
        return samples


@dataclass(frozen=True)
class System:
    """One simulated trading system: its source, what it reports, and its steps."""

    name: str
    kind: str
    role: str
    series: tuple[Series, ...] = ()
    # Spans with a heartbeat at every tick, and the status it reports.
    heartbeats: tuple[tuple[float, float, str], ...] = ((0.0, math.inf, "ok"),)
    # Items sent once, at a moment of the story.
    once: tuple[tuple[float, Item], ...] = ()
    # Trades every this many scenario seconds from the start (None: none), alternating
    # an opening buy and a winning closing sell.
    trade_every: float | None = None
    steps: tuple[Step, ...] = ()
    # Wall-clock heartbeat period and grace of its source (None: Tradewatch's defaults).
    heartbeat_period: float | None = None
    heartbeat_grace: float | None = None
    seed: float = 0.0

    def history(self) -> list[Item]:
        return [sample for series in self.series for sample in series.history(self.seed)]

    def sends(self, previous: float, now: float) -> list[Item]:
        """What the system sends at the tick `now`, the last one having been `previous`."""
        items: list[Item] = []
        for start, end, status in self.heartbeats:
            if start <= now < end:
                items.append(Heartbeat(status))
                break
        for series in self.series:
            if _within(now, series.active):
                items.append(Metric(series.name, round(series.value(now, self.seed), 2)))
        items.extend(item for at, item in self.once if previous < at <= now)
        if self.trade_every is not None:
            first = math.floor(previous / self.trade_every) + 1
            last = math.floor(now / self.trade_every)
            items.extend(_healthy_fill(index) for index in range(max(first, 0), last + 1))
        return items

    def announcements(self) -> list[Announcement]:
        return [Announcement(self.name, step) for step in self.steps]


def _healthy_fill(index: int) -> Fill:
    """The healthy bot's trades: an opening buy, then a sell that closes it at a profit."""
    if index % 2 == 0:
        return Fill(f"h-{index}", "BTC/USDT", "buy", 0.02, 64_000.0, fee=0.5)
    return Fill(f"h-{index}", "BTC/USDT", "sell", 0.02, 64_400.0, pnl=8.0, fee=0.5)


# --- the story ------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Scenario:
    """The whole story at one pace."""

    pace: float
    systems: tuple[System, ...]

    @classmethod
    def at_pace(cls, pace: float = 1.0) -> Scenario:
        """The demo's six systems; pace 2 tells the story twice as fast."""
        if not (MIN_PACE <= pace <= MAX_PACE):
            raise ValueError(f"pace must be between {MIN_PACE:g} and {MAX_PACE:g}")
        return cls(pace, story(pace))

    @property
    def tick_seconds(self) -> float:
        """Wall-clock seconds between two ticks."""
        return TICK / self.pace

    def seconds(self, moment: float) -> float:
        """Wall-clock seconds after the start of scenario time `moment`."""
        return moment / self.pace

    def tick_time(self, index: int) -> float:
        return index * TICK

    @property
    def ends(self) -> float:
        """Scenario time the story ends (the drawdown bot's new peak, its last step's
        moment if later): after it the systems go on steadily."""
        last_step = max(step.at for system in self.systems for step in system.steps)
        return max(last_step, DRAWDOWN_EQUITY.points[-1][0])

    def announcements(self) -> list[Announcement]:
        """Every step of every system, in time order (ties in the systems' order)."""
        found = [(a.at, i, a) for i, s in enumerate(self.systems) for a in s.announcements()]
        return [announcement for _, _, announcement in sorted(found, key=lambda t: t[:2])]

    def due(self, previous: float, now: float) -> list[Announcement]:
        """The announcements of the tick `now` (those after `previous`)."""
        return [a for a in self.announcements() if previous < a.at <= now]

    def expectations(self) -> list[tuple[str, Expect, float]]:
        """(source, expectation, wall-clock seconds by which it should show) of the story."""
        return [
            (a.source, expect, self.seconds(a.at) + expect.within)
            for a in self.announcements()
            for expect in a.step.expects
        ]


def story(pace: float) -> tuple[System, ...]:
    """The six systems of the demo."""
    return (
        _healthy(pace),
        _drawdown(),
        _model(),
        _heartbeat(pace),
        _exchange(),
        _breaker(),
    )
