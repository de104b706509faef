"""What the demo's simulated systems are made of: what a system sends and when, what it
announces should fire, and a whole scenario at a pace. The story itself (the six systems
and their numbers) is `story`.

Pure: no Django, no I/O, no clock. Times are *scenario seconds* from the start of the
story; `Scenario.seconds` turns them into wall-clock seconds at the chosen pace (pace 2
tells the same story twice as fast). Every system sends every `TICK` scenario seconds;
what it sends at a tick is a function of the tick's time alone, so a pace always sends
the same values, and `tests/monitoring_site/test_demo_scenario.py` can run the story
through the pack's rules without a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Literal

from alerts.engine import Severity

# Scenario seconds between two sends to every system.
TICK: Final = 2.0
# Equity history sent before the story starts, so the charts have a past.
HISTORY_SECONDS: Final = 6 * 3600.0
HISTORY_STEP: Final = 60.0
# How long an alert judged on arrival may take to show (derivation and evaluation run
# in the worker; a busy machine is slower).
ARRIVAL_ALLOWANCE_SECONDS: Final = 10.0
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
    # Trades every this many scenario seconds from the start (None: none): the
    # `index`th is `fill(index)`.
    trade_every: float | None = None
    fill: Callable[[int], Fill] | None = None
    steps: tuple[Step, ...] = ()
    # Wall-clock heartbeat period and grace of its source (None: Tradewatch's defaults).
    heartbeat_period: float | None = None
    heartbeat_grace: float | None = None
    # Scenario time its scripted part is over, if later than its last step.
    settles: float = 0.0
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
        if self.trade_every is not None and self.fill is not None:
            first = math.floor(previous / self.trade_every) + 1
            last = math.floor(now / self.trade_every)
            items.extend(self.fill(index) for index in range(max(first, 0), last + 1))
        return items

    def announcements(self) -> list[Announcement]:
        return [Announcement(self.name, step) for step in self.steps]


@dataclass(frozen=True)
class Scenario:
    """The whole story at one pace."""

    pace: float
    systems: tuple[System, ...]

    def __post_init__(self) -> None:
        if not (MIN_PACE <= self.pace <= MAX_PACE):
            raise ValueError(f"pace must be between {MIN_PACE:g} and {MAX_PACE:g}")

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
        """Scenario time the story is over: after it the systems go on steadily."""
        return max(max([s.settles, *(step.at for step in s.steps)]) for s in self.systems)

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
