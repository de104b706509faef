"""The demo's story, dry-run through the pack's rules without a server.

Each system's sends at every tick go through the same pure pieces the server uses (the
derived trading metrics of `metrics.trading`, the engine of `alerts.engine` with the
pack's thresholds and hysteresis): the alert changes that come out must be exactly the
announced ones, at the tick that announces them, and nothing else may fire.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from alerts import engine
from alerts.rulepacks.trading import PackRule, pack_rules
from metrics import trading
from monitoring_site.demo.scenario import (
    TICK,
    Curve,
    Event,
    Expect,
    Fill,
    Heartbeat,
    Metric,
    Scenario,
    System,
)
from monitoring_site.demo.story import HEALTHY_TRADE_SECONDS, demo_story

# A Wednesday noon: the day and the week began long before the history.
START = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
PACES = [1.0, 4.0]


def spec(rule: PackRule) -> engine.RuleSpec:
    return engine.RuleSpec(
        kind=engine.RuleKind(rule.kind),
        thresholds=tuple(
            engine.Threshold(engine.Severity(severity), engine.Comparison(op), value, clear)
            for severity, op, value, clear in rule.thresholds
        ),
        aggregation=engine.Aggregation(rule.aggregation),
        window=rule.window,
    )


@dataclass
class DryRun:
    """One system's data as the server would have it, judged at every tick."""

    system: System
    scenario: Scenario
    trades: list[trading.Trade] = field(default_factory=list)
    equity: list[trading.EquityPoint] = field(default_factory=list)
    reported: dict[str, list[engine.Point]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[engine.Point]] = field(default_factory=lambda: defaultdict(list))
    heartbeats: list[float] = field(default_factory=list)
    firing: dict[str, engine.Threshold] = field(default_factory=dict)
    # (scenario time, rule, severity, change)
    changes: list[tuple[float, str, int, str]] = field(default_factory=list)

    def history(self) -> None:
        for item in self.system.history():
            assert isinstance(item, Metric)
            assert item.at is not None
            self.take(item, START + timedelta(seconds=item.at))

    def take(self, item: object, now: datetime) -> None:
        if isinstance(item, Metric):
            if item.name == "equity":
                self.equity.append(trading.EquityPoint(ts=now, equity=item.value))
            else:
                self.reported[item.name].append(engine.Point(now, item.value))
        elif isinstance(item, Fill):
            self.trades.append(
                trading.Trade(
                    ts=now, symbol=item.symbol, side=item.side, quantity=item.quantity,
                    price=item.price, pnl=item.pnl, fee=item.fee,
                )
            )  # fmt: skip
        elif isinstance(item, Event):
            self.events[item.type].append(engine.Point(now, 1.0))

    def tick(self, previous: float, moment: float) -> None:
        now = START + timedelta(seconds=self.scenario.seconds(moment))
        for item in self.system.sends(previous, moment):
            if isinstance(item, Heartbeat):
                self.heartbeats.append(moment)
            self.take(item, now)
        derived = trading.derive_metrics(trades=self.trades, equity_points=self.equity, now=now)
        for rule in pack_rules():
            if rule.kind == "threshold":
                guard = rule.extra.get("guard_metric")
                if guard and derived.get(guard, 0) < rule.extra["guard_minimum"]:
                    continue
                if rule.metric in derived:
                    points = [engine.Point(now, derived[rule.metric])]
                else:
                    points = self.reported.get(rule.metric, [])
            elif rule.kind == "event":
                points = self.events.get(rule.metric, [])
            else:
                continue  # absence: judged on time by beat, checked apart
            self.judge(
                rule,
                engine.evaluate(spec(rule), points, now=now, firing=self.firing.get(rule.name)),
                moment,
            )

    def judge(self, rule: PackRule, found: engine.Evaluation, moment: float) -> None:
        before = self.firing.get(rule.name)
        if found.status == "breach":
            assert found.threshold is not None
            self.firing[rule.name] = found.threshold
            if before is None:
                self.changes.append((moment, rule.name, found.threshold.severity, "firing"))
            elif found.threshold.severity != before.severity:
                kind = "raised" if found.threshold.severity > before.severity else "lowered"
                self.changes.append((moment, rule.name, found.threshold.severity, kind))
        elif found.status == "ok" and before is not None:
            del self.firing[rule.name]
            self.changes.append((moment, rule.name, before.severity, "resolved"))


def dry_run(pace: float, until: float = 120.0) -> tuple[Scenario, dict[str, DryRun]]:
    scenario = demo_story(pace)
    runs = {system.name: DryRun(system, scenario) for system in scenario.systems}
    for run in runs.values():
        run.history()
    previous = -TICK
    index = 0
    while (moment := scenario.tick_time(index)) <= until:
        for run in runs.values():
            run.tick(previous, moment)
        previous = moment
        index += 1
    return scenario, runs


def announced(scenario: Scenario) -> set[tuple[float, str, str, int, str]]:
    return {
        (a.at, a.source, expect.rule, int(expect.severity), expect.change)
        for a in scenario.announcements()
        for expect in a.step.expects
    }


@pytest.mark.parametrize("pace", PACES)
def test_the_rules_fire_what_the_story_announces_at_the_tick_it_announces_and_nothing_else(
    pace: float,
) -> None:
    scenario, runs = dry_run(pace)

    happened = {
        (at, name, rule, severity, "firing" if kind in ("firing", "raised") else kind)
        for name, run in runs.items()
        for at, rule, severity, kind in run.changes
        if kind != "lowered"  # EMERGENCY down to WARNING on the way back: not announced
    }
    expected = {
        (at, source, rule, severity, change)
        for at, source, rule, severity, change in announced(scenario)
        if rule != "Heartbeat lapsed"
    }
    # A recovery resolves on the ticks of its climb, after the step announcing it.
    resolved_late = {item for item in happened if item[4] == "resolved"}
    assert happened - resolved_late == {item for item in expected if item[4] == "firing"}
    assert {item[1:3] for item in resolved_late} == {
        item[1:3] for item in expected if item[4] == "resolved"
    }
    recovery = next(item[0] for item in expected if item[4] == "resolved")
    assert all(recovery < item[0] <= scenario.ends for item in resolved_late)


def test_every_announced_alert_is_a_rule_and_severity_of_the_pack() -> None:
    severities = {rule.name: {t[0] for t in rule.thresholds} for rule in pack_rules()}
    for _, expect, _ in demo_story().expectations():
        assert expect.severity in severities[expect.rule], expect


def test_several_severities_fire_within_the_first_minute_at_the_default_pace() -> None:
    scenario = demo_story()
    by_severity: dict[int, float] = {}
    for _source, expect, due in scenario.expectations():
        if expect.change == "firing":
            by_severity.setdefault(expect.severity, due)
            by_severity[expect.severity] = min(by_severity[expect.severity], due)
    # The deadlines include the allowance for the worker and, for the heartbeat, beat.
    assert len([due for due in by_severity.values() if due <= 60]) >= 4
    assert max(due for _, expect, due in scenario.expectations() if expect.change == "firing") < 60


@pytest.mark.parametrize("pace", PACES)
def test_only_the_hanging_bot_stops_its_heartbeats_and_its_source_lapses_soon(pace: float) -> None:
    scenario, runs = dry_run(pace, until=60.0)
    hanging = runs["demo-heartbeat"]
    step = next(a for a in scenario.announcements() if a.source == "demo-heartbeat")
    assert max(hanging.heartbeats) < step.at
    assert hanging.system.heartbeat_period is not None
    assert hanging.system.heartbeat_grace is not None
    lapse = scenario.seconds(max(hanging.heartbeats))
    lapse += hanging.system.heartbeat_period + hanging.system.heartbeat_grace
    assert lapse < 20
    for name, run in runs.items():
        if name not in ("demo-heartbeat", "demo-model"):
            assert run.heartbeats[-1] == 60.0, name
    # The model is silent while it is down, far shorter than its default period + grace.
    model = runs["demo-model"].heartbeats
    assert max(b - a for a, b in itertools.pairwise(model)) <= 20.0


@pytest.mark.parametrize("pace", [1.0, 8.0])
def test_the_healthy_bot_trades_every_30_seconds_at_any_pace(pace: float) -> None:
    scenario = demo_story(pace)
    healthy = scenario.systems[0]
    times = []
    previous = -TICK
    for index in range(int(400 * pace / TICK)):
        moment = scenario.tick_time(index)
        found = [item for item in healthy.sends(previous, moment) if isinstance(item, Fill)]
        times += [scenario.seconds(moment)] * len(found)
        previous = moment
    assert times[:3] == [0.0, HEALTHY_TRADE_SECONDS, 2 * HEALTHY_TRADE_SECONDS]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([HEALTHY_TRADE_SECONDS] * len(gaps))
    # Never more than 10 fills in 5 minutes (unusual trading activity).
    assert max(sum(t <= u < t + 300 for u in times) for t in times) <= 10


def test_history_rises_to_the_starting_equity_and_never_above_it() -> None:
    for system in demo_story().systems:
        history = system.history()
        for series in system.series:
            values = [
                item.value
                for item in history
                if isinstance(item, Metric) and item.name == series.name
            ]
            if series.history_rise is None:
                assert values == []
                continue
            assert len(values) == 360
            assert max(values) <= series.curve.at(0.0)
            peak = values[0]
            for value in values:
                peak = max(peak, value)
                assert (peak - value) / peak < 0.01


def test_lines_say_what_should_fire_or_that_nothing_should() -> None:
    lines = {a.source: a.line() for a in demo_story().announcements() if a.at == 0.0}
    assert lines["demo-healthy"].endswith("-> nothing should fire")
    slide = [a.line() for a in demo_story().announcements() if a.at == 16.0]
    assert (
        "demo-drawdown: equity 8,900, down 11.0 % from its peak -> expect Drawdown WARNING, "
        "Weekly drawdown ERROR"
    ) in slide
    assert str(Expect("Drawdown", engine.Severity.WARNING, "resolved")) == "Drawdown resolved"


def test_pace_scales_time_and_is_bounded() -> None:
    fast = demo_story(4.0)
    assert fast.seconds(16.0) == 4.0
    assert fast.tick_seconds == 0.5
    with pytest.raises(ValueError, match="pace"):
        demo_story(0.01)


def test_a_curve_is_linear_between_waypoints_and_held_outside() -> None:
    curve = Curve(((0.0, 10.0), (10.0, 20.0), (10.0, 30.0)))
    assert [curve.at(t) for t in (-5.0, 0.0, 5.0, 10.0, 99.0)] == [10.0, 10.0, 15.0, 20.0, 30.0]
    with pytest.raises(ValueError, match="time order"):
        Curve(((5.0, 1.0), (0.0, 1.0)))
