"""The backtest replays a rule as the live engine judged it: same alerts, same starts.

Each proof drives the real lifecycle first: samples stored over simulated time, the
source evaluated on each arrival (as the trigger does) and on each of beat's ticks (as
`evaluate_all_sources` does), with the alerts and notifications it wrote collected.
The backtest of the same rule over the same period must find the same alerts, with the
same start and end, peak severity and peak value, and the same notifications.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from django.utils import timezone

from alerts.backtest import BacktestRequest, Tier, backtest_run
from alerts.backtest.data import micros, moment
from alerts.escalation import alerts_escalate
from alerts.evaluation import all_sources_evaluate, source_evaluate
from alerts.models import Alert, AlertTransition, Channel, Notification, Policy, RuleSourceState
from metrics.models import Source
from tests.alerts.conftest import MakeRule, record, send_event

pytestmark = pytest.mark.django_db

WARNING, ERROR, CRITICAL, EMERGENCY = 30, 40, 50, 60
BEAT = 15  # seconds: beat's evaluation of every source
NAMES = {30: "warning", 40: "error", 50: "critical", 60: "emergency"}


@pytest.fixture
def start() -> datetime:
    """Two hours ago, on one of beat's ticks."""
    now = micros(timezone.now() - timedelta(hours=2))
    return moment(now - now % (BEAT * 1_000_000))


@pytest.fixture
def console(db: None) -> Channel:
    channel = Channel.objects.create(name="ops-console", kind=Channel.Kind.CONSOLE)
    policy = Policy.objects.create(name="everything")
    policy.channels.set([channel])
    return channel


def live(
    source: Source,
    start: datetime,
    seconds: int,
    values: Callable[[int], float | None],
    *,
    every: int = 5,
    offset: int = 2,
    metric: str = "drawdown_pct",
    events: Callable[[int], str | None] | None = None,
    also: Callable[[int], tuple[str, float] | None] | None = None,
    escalate: bool = False,
) -> datetime:
    """Drive the live engine over `seconds` of simulated time: a sample of `metric` every
    `every` seconds (`values(second)`, None: nothing sent), another metric's sample and
    an event when `also` and `events` say, each evaluated on arrival, and beat's ticks;
    return the end of the period."""
    for second in range(seconds + 1):
        at = start + timedelta(seconds=second)
        arrived: set[str] = set()  # the metric names that arrived
        every_rule = False  # an event arrived: every rule is judged (`alerts.trigger`)
        if second % every == offset % every and (value := values(second)) is not None:
            record(source, metric, value, ts=at)
            arrived.add(metric)
        if also is not None and (other := also(second)) is not None:
            record(source, other[0], other[1], ts=at)
            arrived.add(other[0])
        if events is not None and (kind := events(second)) is not None:
            send_event(source, kind, ts=at)
            every_rule = True
        if second % BEAT == 0:
            # Beat: every rule (an arrival at that very instant is judged with them, once).
            all_sources_evaluate(now=at)
        elif arrived or every_rule:
            # On arrival: the rules reading what arrived, as the trigger asks.
            names = None if every_rule else frozenset(arrived)
            source_evaluate(source_id=source.pk, now=at, names=names)
        if escalate and (arrived or second % BEAT == 0):
            alerts_escalate(now=at)  # (its own beat: looked at as often in the backtest)
    return start + timedelta(seconds=seconds)


def live_alerts(rule_id: int, source_id: int | None = None) -> list[dict[str, Any]]:
    """What the live lifecycle recorded of a rule (on one source, if given), in the
    backtest's words."""
    alerts = Alert.objects.filter(rule_id=rule_id)
    if source_id is not None:
        alerts = alerts.filter(source_id=source_id)
    found = []
    for alert in alerts.order_by("first_seen", "id"):
        severities = AlertTransition.objects.filter(alert=alert).values_list("severity", flat=True)
        found.append(
            {
                "start": alert.first_seen,
                "fired_at": alert.fired_at,
                "end": alert.resolved_at,
                "peak_severity": NAMES[max([alert.severity, *severities])],
                "peak_value": alert.peak_value,
                "evaluations": alert.count,
            }
        )
    return found


def live_notifications() -> list[tuple[datetime, str, str]]:
    return [
        (n.created_at, n.event, n.channel.name)
        for n in Notification.objects.select_related("channel").order_by("created_at", "id")
    ]


def backtest(
    rule_id: int,
    source: Source,
    start: datetime,
    end: datetime,
    tiers: Sequence[Tier] | None = None,
) -> dict[str, Any]:
    return backtest_run(
        BacktestRequest(
            rule_id=rule_id, start=start, end=end, source_ids=(source.pk,),
            thresholds=None if tiers is None else tuple(tiers),
        )
    )  # fmt: skip


def found_alerts(run: dict[str, Any]) -> list[dict[str, Any]]:
    def when(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    return [
        {
            "start": when(alert["start"]),
            "fired_at": when(alert["fired_at"]),
            "end": when(alert["end"]),
            "peak_severity": alert["peak_severity"],
            "peak_value": alert["peak_value"],
            "evaluations": alert["evaluations"],
        }
        for alert in run["alerts"]
    ]


def found_notifications(run: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    return [
        (datetime.fromisoformat(item["at"]), item["event"], item["channel"])
        for item in run["notifications"]["items"]
    ]


def drawdown(second: int) -> float:
    """Calm, a climb through WARNING into CRITICAL, a slow fall through both clear
    values, a short blip, calm again."""
    shape = [
        (0, 5.0), (120, 5.0), (150, 12.0), (200, 14.0), (230, 26.0), (300, 24.0),
        (330, 19.0), (420, 15.0), (480, 9.0), (540, 7.0), (600, 5.0), (700, 5.0),
        (715, 16.0), (760, 16.0), (775, 4.0), (900, 4.0),
    ]  # fmt: skip
    for (t0, v0), (t1, v1) in pairwise(shape):
        if t0 <= second <= t1:
            return round(v0 + (v1 - v0) * (second - t0) / (t1 - t0), 1)
    return 4.0


def test_it_finds_the_alerts_the_live_engine_opened_with_hysteresis_and_for(
    source: Source, make_rule: MakeRule, start: datetime, console: Channel
) -> None:
    rule = make_rule(
        thresholds=[(WARNING, ">", 10, 8), (CRITICAL, ">", 20, 18)],
        aggregation="avg", window=timedelta(seconds=30), for_duration=timedelta(seconds=20),
    )  # fmt: skip
    end = live(source, start, 900, drawdown)
    expected, sent = live_alerts(rule.pk), live_notifications()
    assert [a["peak_severity"] for a in expected] == ["critical", "warning"]  # a real run

    answer = backtest(rule.pk, source, start, end)

    [run] = answer["runs"]
    assert found_alerts(run) == expected
    assert found_notifications(run) == sent


def test_it_finds_what_keep_firing_for_and_m_of_n_did_live(
    source: Source, make_rule: MakeRule, start: datetime, console: Channel
) -> None:
    rule = make_rule(
        thresholds=[(WARNING, ">", 10, None), (ERROR, ">", 15, None), (EMERGENCY, ">", 25, 22)],
        keep_firing_for=timedelta(seconds=40), m_of_n_m=2, m_of_n_n=3,
    )  # fmt: skip
    end = live(source, start, 900, drawdown, every=7, offset=3)
    expected = live_alerts(rule.pk)
    assert len(expected) >= 1

    [run] = backtest(rule.pk, source, start, end)["runs"]

    assert found_alerts(run) == expected
    assert found_notifications(run) == live_notifications()


def test_it_finds_event_alerts_and_missing_data_as_live(
    source: Source, make_rule: MakeRule, start: datetime
) -> None:
    errors = make_rule(
        metric="order_rejected", kind="event", window=timedelta(seconds=60),
        thresholds=[(WARNING, ">=", 3, None), (CRITICAL, ">=", 6, None)],
    )  # fmt: skip
    stale = make_rule(
        metric="spread_bps", aggregation="last", window=timedelta(seconds=20),
        missing_data="alert", thresholds=[(WARNING, ">", 50, None)],
    )  # fmt: skip

    def rejects(second: int) -> str | None:
        burst = 200 <= second <= 260 and second % 6 == 0
        return "order_rejected" if burst or (500 <= second <= 520 and second % 9 == 0) else None

    end = live(
        source, start, 600, lambda s: None if 300 <= s <= 360 else 20.0 + (s % 40),
        metric="spread_bps", events=rejects,
    )  # fmt: skip
    for rule in (errors, stale):
        expected = live_alerts(rule.pk)
        assert expected, rule.name

        [run] = backtest(rule.pk, source, start, end)["runs"]

        assert found_alerts(run) == expected, rule.name


def test_edited_thresholds_give_other_alerts_beside_the_current_ones(
    source: Source, make_rule: MakeRule, start: datetime
) -> None:
    rule = make_rule(thresholds=[(WARNING, ">", 10, 8), (CRITICAL, ">", 20, 18)])
    end = start + timedelta(seconds=900)
    for second in range(2, 900, 5):
        record(source, "drawdown_pct", drawdown(second), ts=start + timedelta(seconds=second))

    answer = backtest(
        rule.pk, source, start, end, [Tier(WARNING, ">", 25, None), Tier(CRITICAL, ">", 30, None)]
    )

    current, edited = answer["runs"]
    assert (current["label"], edited["label"]) == ("current", "edited")
    assert [a["peak_severity"] for a in current["alerts"]] == ["critical", "warning"]
    assert [a["peak_severity"] for a in edited["alerts"]] == ["warning"]
    assert edited["alerts"][0]["start"] != current["alerts"][0]["start"]
    assert edited["thresholds"][0] == {
        "severity": "critical", "comparison": ">", "value": 30.0, "clear_value": None
    }  # fmt: skip


def test_it_never_writes_alerts_notifications_or_m_of_n_history(
    source: Source, make_rule: MakeRule, start: datetime, console: Channel
) -> None:
    rule = make_rule(thresholds=[(WARNING, ">", 10, 8)], m_of_n_m=1, m_of_n_n=2)
    for second in range(2, 900, 5):
        record(source, "drawdown_pct", drawdown(second), ts=start + timedelta(seconds=second))
    counts = [model.objects.count() for model in (Alert, AlertTransition, Notification)]

    answer = backtest(rule.pk, source, start, start + timedelta(seconds=900))

    assert answer["runs"][0]["summary"]["alerts"] >= 1
    assert answer["runs"][0]["notifications"]["total"] >= 1
    assert [model.objects.count() for model in (Alert, AlertTransition, Notification)] == counts
    assert not RuleSourceState.objects.exists()


def test_every_kind_of_rule_finds_what_the_live_engine_found(
    source: Source, make_rule: MakeRule, start: datetime, console: Channel
) -> None:
    """Many rules on one noisy metric, judged together live (as a source's rules are),
    then each backtested: window aggregations, percentiles, changes, anomalies, rates, a
    guard on another metric, a kill switch, missing data, both directions."""
    seconds = timedelta(seconds=1)
    rules = [
        make_rule("latency_ms", [(WARNING, ">", 60, 50), (CRITICAL, ">", 90, 80)],
                  aggregation="avg", window=30 * seconds, for_duration=10 * seconds),
        make_rule("latency_ms", [(ERROR, ">=", 100, None)], aggregation="max",
                  window=20 * seconds, missing_data="resolve"),
        make_rule("latency_ms", [(WARNING, ">", 80, 70)], aggregation="p95",
                  window=60 * seconds, min_samples=5),
        make_rule("latency_ms", [(WARNING, ">", 70, None)], keep_firing_for=15 * seconds),
        make_rule("latency_ms", [(WARNING, ">", 400, None)], aggregation="sum",
                  window=15 * seconds),
        make_rule("latency_ms", [(WARNING, "<", 6, None)], aggregation="count",
                  window=20 * seconds, missing_data="alert"),
        make_rule("latency_ms", [(WARNING, ">", 25, None)], kind="rate_of_change",
                  window=30 * seconds),
        make_rule("latency_ms", [(ERROR, ">", 40, None)], kind="rate_of_change",
                  window=30 * seconds, change_percent=True),
        make_rule("latency_ms", [(WARNING, ">", 2.5, None)], kind="anomaly",
                  window=60 * seconds, min_samples=8),
        make_rule("latency_ms", [(WARNING, ">", 2, None)], aggregation="rate",
                  window=20 * seconds),
        make_rule("latency_ms", [(WARNING, "<", 20, 25), (CRITICAL, "<", 10, 12)],
                  aggregation="min", window=30 * seconds),
        make_rule("latency_ms", [(WARNING, ">", 55, None)], aggregation="avg",
                  window=30 * seconds, guard_metric="trade_count", guard_minimum=5),
        make_rule("latency_ms", [(WARNING, ">", 65, None)], inhibited_by="kill_switch"),
        make_rule("latency_ms", [(WARNING, ">", 60, None)], kind="absence"),
        make_rule("latency_ms", [(WARNING, ">", 40, None)], window=10 * seconds),
        make_rule("latency_ms", [(WARNING, ">", 40, None)], aggregation="avg",
                  window=20 * seconds, min_samples=6),
    ]  # fmt: skip
    noise = [37, 11, 29, 3, 41, 17, 23, 7, 31, 13, 43, 19, 2, 47, 5, 53]

    def latency(second: int) -> float | None:
        if 330 <= second <= 420:
            return None  # the bot went quiet
        base = 30.0 + noise[(second // 3) % len(noise)]
        if 120 <= second < 200:
            base += 45.0
        if 450 <= second < 470:
            base = 5.0
        return base

    def happenings(second: int) -> str | None:
        return {200: "kill_switch_activated", 260: "kill_switch_released"}.get(second)

    def trades(second: int) -> tuple[str, float] | None:
        """The guard's metric, on its own cadence."""
        return ("trade_count", float(second // 60)) if second % 30 == 0 else None

    end = live(source, start, 600, latency, every=3, offset=1, metric="latency_ms",
               events=happenings, also=trades)  # fmt: skip

    for rule in rules:
        expected = live_alerts(rule.pk)
        sent = [
            (n.created_at, n.event, n.channel.name)
            for n in Notification.objects.filter(alert__rule=rule)
            .select_related("channel")
            .order_by("created_at", "id")
        ]

        [run] = backtest(rule.pk, source, start, end)["runs"]

        assert found_alerts(run) == expected, rule.name
        assert found_notifications(run) == sent, rule.name
    assert sum(1 for rule in rules if live_alerts(rule.pk)) >= 12  # most rules fired


def test_it_escalates_and_routes_per_policy_as_live(
    source: Source, make_rule: MakeRule, start: datetime, console: Channel
) -> None:
    """Two policies: one for CRITICAL only, with an escalation after a minute to a
    channel of its own; the other for everything, spacing repeats out further."""
    pager = Channel.objects.create(name="pager", kind=Channel.Kind.CONSOLE)
    critical = Policy.objects.create(
        name="critical", min_severity=CRITICAL, escalate_after=timedelta(seconds=60)
    )
    critical.channels.set([console])
    critical.escalation_channels.set([pager])
    Policy.objects.filter(name="everything").update(repeat_seconds={"WARNING": 120, "CRITICAL": 90})
    rule = make_rule(thresholds=[(WARNING, ">", 10, 8), (CRITICAL, ">", 20, 18)])
    end = live(source, start, 900, drawdown, escalate=True)
    sent = live_notifications()
    assert any(event == "escalated" for _, event, _ in sent)

    [run] = backtest(rule.pk, source, start, end)["runs"]

    assert found_alerts(run) == live_alerts(rule.pk)
    assert found_notifications(run) == sent
    by_policy = {row["policy"]: row["events"] for row in run["notifications"]["by_policy"]}
    assert by_policy["critical"]["escalated"] == 1
