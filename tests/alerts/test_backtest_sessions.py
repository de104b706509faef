"""The backtest honours schedules and replays "alive but not trading" as the live engine.

Each proof drives the live engine first, over real calendar days: the NYSE was closed on
Thanksgiving, Thursday 2025-11-27, and closed early, at 13:00 New York time (18:00
UTC), the day after. Data is stored over simulated time, each arrival evaluated as
the trigger asks and every source on each of beat's ticks, and the alerts and
notifications the lifecycle wrote are collected. The backtest of each rule on each
source over the same period must report the same alerts (start, firing, end, peak
severity and value, evaluations) and the same notifications.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pprint import pformat
from typing import Any

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from alerts.backtest import BacktestRequest, backtest_run
from alerts.escalation import alerts_escalate
from alerts.evaluation import all_sources_evaluate, source_evaluate
from alerts.models import Alert, Channel, Notification, Policy, Rule
from metrics.ingest import trade_ingest
from metrics.models import Expectation, Schedule, Source
from metrics.schedules import schedule_create
from metrics.validation import TradeIn
from tests.alerts.conftest import MakeRule, record, send_event
from tests.alerts.test_backtest import found_alerts, found_notifications
from tests.alerts.test_backtest import live_alerts as recorded_alerts
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db

WARNING, ERROR, CRITICAL = 30, 40, 50
START = datetime(2025, 11, 26, 14, tzinfo=UTC)  # Wednesday, 09:00 in New York
END = datetime(2025, 11, 28, 20, tzinfo=UTC)  # Friday, two hours after the early close
BEAT = timedelta(minutes=10)
SIGNAL_RULES = ("No decisions", "No orders", "No market data", "Order reject rate")


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of November 2025 in UTC (New York is 5 hours behind)."""
    return datetime(2025, 11, day, hour, minute, tzinfo=UTC)


def every(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    found, at = [], first
    while at <= last:
        found.append(at)
        at += step
    return found


@dataclass(frozen=True)
class Arrival:
    """Data a source sends at `at`; `names`: the metrics it carries (None: an event or
    a trade, after which the trigger has every rule judged)."""

    at: datetime
    source: Source
    store: Callable[[], None]
    names: frozenset[str] | None


def sample(source: Source, name: str, at: datetime, value: float) -> Arrival:
    return Arrival(at, source, lambda: record(source, name, value, ts=at), frozenset({name}))


def event(source: Source, kind: str, at: datetime) -> Arrival:
    return Arrival(at, source, lambda: send_event(source, kind, ts=at), None)


def events(
    source: Source, kind: str, first: datetime, last: datetime, minutes: int
) -> list[Arrival]:
    """An event of `kind` every `minutes` from `first` to `last`."""
    return [event(source, kind, at) for at in every(first, last, timedelta(minutes=minutes))]


def trade(source: Source, at: datetime) -> Arrival:
    def store() -> None:
        trade_ingest(
            source=source,
            trades=[TradeIn(f"t-{at.timestamp()}", "AAPL", "buy", 1, 190.0, None, 0.0, at)],
        )

    return Arrival(at, source, store, None)


@pytest.fixture(autouse=True)
def repeats_every_two_hours(settings: Any) -> None:
    """Repeats of a firing alert every two hours, whatever its severity: over days of
    simulated time the live engine then writes a few, not one per evaluation."""
    settings.TRADEWATCH_REPEAT_SECONDS = dict.fromkeys(
        ("EMERGENCY", "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"), 7200
    )


@pytest.fixture
def beat_every_ten_minutes(db: None) -> None:
    """Beat evaluates every source every 10 minutes (the backtest reads its entry)."""
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=int(BEAT.total_seconds()), period=IntervalSchedule.SECONDS
    )
    task = "alerts.tasks.evaluate_all_sources"
    if not PeriodicTask.objects.filter(task=task).update(interval=interval, enabled=True):
        PeriodicTask.objects.create(name="Evaluate all sources", task=task, interval=interval)


@pytest.fixture
def console(db: None) -> Channel:
    channel = Channel.objects.create(name="ops-console", kind=Channel.Kind.CONSOLE)
    Policy.objects.create(name="everything").channels.set([channel])
    return channel


def drive(arrivals: Iterable[Arrival], end: datetime = END, *, escalate: bool = False) -> None:
    """The live engine from START to `end`: each arrival stored and its source evaluated
    (the rules reading what arrived; every rule after an event or a trade), and every
    source on each of beat's ticks (whole multiples of its interval since the epoch).
    `escalate`: escalation looked at after each evaluation (as the backtest does)."""
    assert START.timestamp() % BEAT.total_seconds() == 0
    ticks = set(every(START, end, BEAT))
    by_time: dict[datetime, list[Arrival]] = defaultdict(list)
    for arrival in arrivals:
        assert START < arrival.at <= end
        by_time[arrival.at].append(arrival)
    for now in sorted(ticks | set(by_time)):
        names: dict[Source, frozenset[str] | None] = {}
        for arrival in by_time.get(now, []):
            arrival.store()
            read = names.get(arrival.source, frozenset())
            # After an event or a trade every rule is judged; else those reading a name.
            names[arrival.source] = (
                None if arrival.names is None or read is None else read | arrival.names
            )
        if now in ticks:
            all_sources_evaluate(now=now)  # (an arrival at a tick is judged with it, once)
        else:
            for source, read in names.items():
                source_evaluate(source_id=source.pk, now=now, names=read)
        if escalate:
            alerts_escalate(now=now)


def live_alerts(rule: Rule, source: Source) -> list[dict[str, Any]]:
    """What the live lifecycle recorded of a rule on a source, in the backtest's words."""
    return recorded_alerts(rule.pk, source.pk)


def live_notifications(rule: Rule, source: Source) -> list[tuple[datetime, str, str]]:
    return [
        (n.created_at, n.event, n.channel.name)
        for n in Notification.objects.filter(alert__rule=rule, alert__source=source)
        .select_related("channel")
        .order_by("created_at", "id")
    ]


def backtest(rule: Rule, source: Source, end: datetime = END) -> dict[str, Any]:
    answer = backtest_run(
        BacktestRequest(rule_id=rule.pk, start=START, end=end, source_ids=(source.pk,)), now=end
    )
    assert answer["cadence"]["beat_seconds"] == BEAT.total_seconds()
    return answer


def assert_replayed_as_live(
    rules: Iterable[Rule], sources: Iterable[Source], end: datetime = END
) -> None:
    differences = []
    for rule in rules:
        for source in sources:
            [run] = backtest(rule, source, end)["runs"]
            replayed = (found_alerts(run), found_notifications(run))
            recorded = (live_alerts(rule, source), live_notifications(rule, source))
            if replayed != recorded:
                # The alerts side by side, and the notifications only one side has.
                sent, heard = set(replayed[1]), set(recorded[1])
                differences.append(
                    (rule.name, source.name, replayed[0], recorded[0], sent - heard, heard - sent)
                )
    assert not differences, pformat(differences)


def starts(rule: Rule, source: Source) -> list[tuple[datetime, datetime | None]]:
    return [(alert["start"], alert["end"]) for alert in live_alerts(rule, source)]


# --- rules on schedules --------------------------------------------------------------------


def drawdown(at: datetime) -> float:
    """Calm; a WARNING level from Wednesday 19:00 UTC over the close (21:00) into the
    night; CRITICAL from 01:00 all Thanksgiving; calm on Friday morning; CRITICAL from
    15:00 and a WARNING level from 17:30, over the early close (18:00)."""
    if at < utc(26, 19):
        return 5.0
    if at < utc(26, 23):
        return 15.0
    if at < utc(27, 1):
        return 5.0
    if at < utc(28, 0):
        return 22.0
    if at < utc(28, 15):
        return 5.0
    return 25.0 if at < utc(28, 17, 30) else 15.0


def test_rules_on_an_exchange_calendar_and_weekly_windows_replay_as_live(
    make_rule: MakeRule, beat_every_ten_minutes: None, console: Channel
) -> None:
    nyse = schedule_create(name="nyse", kind=Schedule.Kind.EXCHANGE, exchange="XNYS")
    new_york_hours = schedule_create(
        name="ny-hours", kind=Schedule.Kind.WEEKLY, windows=["mon-fri 09:30-16:00"],
        zone="America/New_York",
    )  # fmt: skip
    not_at_night = schedule_create(
        name="not-at-night", kind=Schedule.Kind.WEEKLY, windows=["daily 22:00-02:00"],
        invert=True,
    )  # fmt: skip
    tiers = [(WARNING, ">", 10, 8), (CRITICAL, ">", 20, 18)]
    window = timedelta(minutes=30)
    always = make_rule(thresholds=tiers, aggregation="avg", window=window)
    resolving = make_rule(thresholds=tiers, aggregation="avg", window=window, schedule=nyse,
                          missing_data=Rule.MissingData.RESOLVE)  # fmt: skip
    alerting = make_rule(thresholds=tiers, aggregation="avg", window=window, schedule=nyse,
                         missing_data=Rule.MissingData.ALERT)  # fmt: skip
    keeping = make_rule(thresholds=tiers, aggregation="avg", window=window, schedule=nyse,
                        missing_data=Rule.MissingData.KEEP,
                        for_duration=timedelta(minutes=10))  # fmt: skip
    weekly = make_rule(thresholds=tiers, schedule=new_york_hours,
                       missing_data=Rule.MissingData.RESOLVE)  # fmt: skip
    nightly_rest = make_rule(thresholds=tiers, schedule=not_at_night,
                             missing_data=Rule.MissingData.RESOLVE)  # fmt: skip
    quotes = make_rule("quotes", [(WARNING, ">", 1800, None)], kind=Rule.Kind.ABSENCE,
                       schedule=nyse)  # fmt: skip
    rejects = make_rule("order_rejected", [(WARNING, ">=", 3, None)], kind=Rule.Kind.EVENT,
                        window=timedelta(minutes=30), schedule=nyse,
                        missing_data=Rule.MissingData.RESOLVE)  # fmt: skip
    equities = SourceFactory.create(name="equities-bot")
    crypto = SourceFactory.create(name="crypto-bot")

    arrivals = []
    for bot in (equities, crypto):
        arrivals += [
            sample(bot, "drawdown_pct", at, drawdown(at))
            for at in every(utc(26, 14, 12), END, timedelta(minutes=20))
        ]
        arrivals += [
            sample(bot, "quotes", at, 1.0)
            for first, last in ((utc(26, 14, 36), utc(26, 20, 1)), (utc(28, 16, 1), utc(28, 17, 1)))
            for at in every(first, last, timedelta(minutes=10))
        ]
        arrivals += events(bot, "order_rejected", utc(26, 20, 41), utc(26, 20, 59), 3)
        arrivals += events(bot, "order_rejected", utc(27, 15, 1), utc(27, 15, 20), 3)
    drive(arrivals)

    # What the live engine did (the scenario is real): the rule without a schedule
    # fired on Thanksgiving; those on the NYSE's sessions did not, and an alert open at
    # Wednesday's close was resolved (missing data: resolve) by the first evaluation
    # after it; the weekly window, which knows no holiday, judged Thanksgiving.
    assert any(utc(27, 0) <= start < utc(28, 0) for start, _ in starts(always, crypto))
    assert all(not utc(26, 21) <= start < utc(28, 14, 30)
               for rule in (resolving, alerting, keeping, quotes, rejects)
               for start, _ in starts(rule, equities))  # fmt: skip
    assert (utc(26, 21), Alert.Resolution.MISSING_DATA) in [
        (alert.resolved_at, alert.resolution) for alert in resolving.alerts.all()
    ]
    assert any(utc(27, 14, 30) <= start < utc(27, 21) for start, _ in starts(weekly, equities))
    assert any(utc(28, 14, 30) < start < utc(28, 18) for start, _ in starts(quotes, equities))
    assert all(len(starts(rule, equities)) >= 1 for rule in
               (resolving, alerting, keeping, weekly, nightly_rest, quotes, rejects))  # fmt: skip

    assert_replayed_as_live(
        [always, resolving, alerting, keeping, weekly, nightly_rest, quotes, rejects],
        [equities, crypto],
    )
    answer = backtest(resolving, equities)
    assert any("XNYS" in note for note in answer["notes"])
    assert not any("judged only" in note for note in backtest(always, crypto)["notes"])


def test_an_alert_kept_over_the_close_still_escalates_while_the_market_is_closed(
    make_rule: MakeRule, beat_every_ten_minutes: None, console: Channel
) -> None:
    nyse = schedule_create(name="nyse", kind=Schedule.Kind.EXCHANGE, exchange="XNYS")
    pager = Channel.objects.create(name="pager", kind=Channel.Kind.CONSOLE)
    Policy.objects.create(name="escalating", escalate_after=timedelta(hours=1)
                          ).escalation_channels.set([pager])  # fmt: skip
    rule = make_rule(thresholds=[(WARNING, ">", 10, 8)], schedule=nyse,
                     missing_data=Rule.MissingData.KEEP)  # fmt: skip
    bot = SourceFactory.create(name="equities-bot")
    end = utc(27, 2)
    drive(
        [sample(bot, "drawdown_pct", at, 15.0 if at >= utc(26, 20) else 5.0)
         for at in every(utc(26, 14, 2), end, timedelta(minutes=4))],
        end, escalate=True,
    )  # fmt: skip
    [escalated] = Notification.objects.filter(event=Notification.Event.ESCALATED)
    assert utc(26, 21) < escalated.created_at < utc(26, 21, 10)  # the market closed at 21:00

    assert_replayed_as_live([rule], [bot], end)


# --- alive but not trading -----------------------------------------------------------------


def test_the_four_signal_rules_replay_as_live_on_a_session_and_around_the_clock(
    beat_every_ten_minutes: None, console: Channel
) -> None:
    """The trading pack's four rules (its others left out: a lapsed heartbeat would
    inhibit them, which no history can replay) on an equities bot that follows the
    NYSE and a crypto bot that never rests, both reporting the same."""
    Rule.objects.exclude(name__in=SIGNAL_RULES).delete()
    nyse = schedule_create(name="nyse", kind=Schedule.Kind.EXCHANGE, exchange="XNYS")
    equities = SourceFactory.create(name="equities-bot", schedule=nyse)
    crypto = SourceFactory.create(name="crypto-bot")
    Expectation.objects.create(source=equities, signal="decision", grace=timedelta(minutes=20))
    silent = SourceFactory.create(name="silent-bot")  # never reports a signal

    arrivals = [sample(silent, "latency_ms", at, 3.0)
                for at in every(utc(26, 14, 30), END, timedelta(hours=1))]  # fmt: skip
    for bot in (equities, crypto):
        # Decisions on Wednesday until 19:01, and again on Friday afternoon.
        arrivals += events(bot, "decision", utc(26, 14, 41), utc(26, 19, 1), 10)
        arrivals += events(bot, "decision", utc(28, 16, 1), utc(28, 17, 41), 10)
        # Orders every minute on Wednesday until 16:30, a burst of rejects among them;
        # trades on Friday.
        arrivals += events(bot, "order_submitted", utc(26, 14, 31), utc(26, 16, 30), 1)
        arrivals += events(bot, "order_rejected", utc(26, 15, 30), utc(26, 15, 51), 3)
        arrivals += [trade(bot, at)
                     for at in every(utc(28, 15), utc(28, 17), timedelta(minutes=15))]  # fmt: skip
        # Market data by its age on Wednesday (a stale feed from 17:00 to 17:20), by
        # events on Friday until 17:00.
        for at in every(utc(26, 14, 30), utc(26, 20, 58), timedelta(minutes=2)):
            stale = utc(26, 17) <= at < utc(26, 17, 20)
            age = (at - utc(26, 16, 58)).total_seconds() * 1000 if stale else 800.0
            arrivals.append(sample(bot, "market_data_age_ms", at + timedelta(seconds=1), age))
        arrivals += events(bot, "market_data", utc(28, 14, 33), utc(28, 17), 3)
    drive(arrivals)

    rules = list(Rule.objects.filter(name__in=SIGNAL_RULES).order_by("name"))
    assert len(rules) == 4
    named = {rule.name: rule for rule in rules}
    # The scenario is real: every rule fired on both bots; the crypto bot's through
    # Thanksgiving, the equities bot's never while the NYSE was closed.
    for rule in rules:
        assert starts(rule, equities), rule.name
        assert starts(rule, crypto), rule.name
        assert all(not utc(26, 21) <= start < utc(28, 14, 30)
                   for start, _ in starts(rule, equities)), rule.name  # fmt: skip
    assert not Alert.objects.filter(source=silent).exists()
    assert any(start < utc(27, 0) and (end is None or end > utc(28, 0))
               for start, end in starts(named["No market data"], crypto))  # fmt: skip

    assert_replayed_as_live(rules, [equities, crypto, silent])
    notes = backtest(named["No decisions"], silent)["notes"]
    assert any("silent-bot reported no decision" in note for note in notes)


def test_a_signal_switched_off_for_a_source_is_not_replayed_for_it(
    beat_every_ten_minutes: None,
) -> None:
    Rule.objects.exclude(name="No decisions").delete()
    rule = Rule.objects.get(name="No decisions")
    watched = SourceFactory.create(name="watched-bot")
    unwatched = SourceFactory.create(name="unwatched-bot")
    Expectation.objects.create(source=unwatched, signal="decision", enabled=False)
    end = utc(26, 18)
    drive(
        [
            *events(watched, "decision", utc(26, 14, 41), utc(26, 15, 1), 10),
            *events(unwatched, "decision", utc(26, 14, 41), utc(26, 15, 1), 10),
        ],
        end,
    )
    assert starts(rule, watched)
    assert not starts(rule, unwatched)

    assert_replayed_as_live([rule], [watched, unwatched], end)
    notes = backtest(rule, unwatched, end)["notes"]
    assert any("unwatched-bot's expectation of decision is switched off" in n for n in notes)
