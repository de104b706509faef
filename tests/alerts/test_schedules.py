"""Rules, heartbeats and silences on schedules: judged only while their market is open.

Real calendar data (the exchange-calendars package): the NYSE was closed on Thanksgiving,
Thursday 2025-11-27, and closed early, at 13:00 New York time, the day after.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.models import Alert, AlertTransition, Rule, RuleSourceState, Silence
from alerts.silences import active_silences, alert_silences, is_silenced, silence_create
from metrics.models import Schedule, Source
from metrics.schedules import schedule_create
from tests.alerts.conftest import MakeRule, beat, evaluate, open_alerts, record
from tests.factories import SourceFactory, make_alert

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
CRITICAL, WARNING = 50, 30


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


WEDNESDAY_CLOSE = ny(2025, 11, 26, 16)
THANKSGIVING_NOON = ny(2025, 11, 27, 12)
FRIDAY_OPEN = ny(2025, 11, 28, 9, 30)
FRIDAY_EARLY_CLOSE = ny(2025, 11, 28, 13)


@pytest.fixture
def nyse(db: None) -> Schedule:
    return schedule_create(name="nyse", kind=Schedule.Kind.EXCHANGE, exchange="XNYS")


@pytest.fixture
def new_york_hours(db: None) -> Schedule:
    return schedule_create(
        name="ny-hours",
        kind=Schedule.Kind.WEEKLY,
        windows=["mon-fri 09:30-16:00"],
        zone="America/New_York",
    )


def test_a_rule_is_not_judged_outside_its_schedule(make_rule: MakeRule, nyse: Schedule) -> None:
    rule = make_rule("drawdown_pct", schedule=nyse)
    bot = SourceFactory.create(name="equities-bot")
    record(bot, "drawdown_pct", 15, ts=THANKSGIVING_NOON - timedelta(minutes=1))

    evaluate(bot, now=THANKSGIVING_NOON)

    assert not open_alerts(bot)
    # Not judged at all: nothing counted towards M of N either.
    assert not RuleSourceState.objects.filter(rule=rule).exists()

    record(bot, "drawdown_pct", 15, ts=FRIDAY_OPEN + timedelta(minutes=5))
    evaluate(bot, now=FRIDAY_OPEN + timedelta(minutes=5))
    [alert] = open_alerts(bot)
    assert alert.rule == rule


def test_a_rule_without_a_schedule_is_judged_at_any_hour(make_rule: MakeRule) -> None:
    make_rule("drawdown_pct")
    crypto = SourceFactory.create(name="crypto-bot")
    record(crypto, "drawdown_pct", 15, ts=THANKSGIVING_NOON - timedelta(minutes=1))

    evaluate(crypto, now=THANKSGIVING_NOON)

    assert len(open_alerts(crypto)) == 1


def test_an_absence_clock_starts_at_the_open_not_at_the_close_before(
    make_rule: MakeRule, new_york_hours: Schedule
) -> None:
    make_rule("quotes", [(WARNING, ">", 600, None)], kind=Rule.Kind.ABSENCE,
              schedule=new_york_hours)  # fmt: skip
    bot = SourceFactory.create(name="equities-bot")
    record(bot, "quotes", 1, ts=WEDNESDAY_CLOSE - timedelta(minutes=1))

    evaluate(bot, now=ny(2025, 11, 26, 22))  # evening: not judged
    evaluate(bot, now=FRIDAY_OPEN - timedelta(minutes=1))  # before the open
    assert not open_alerts(bot)

    evaluate(bot, now=FRIDAY_OPEN + timedelta(minutes=5))  # 5 minutes into the session
    assert not open_alerts(bot)

    evaluate(bot, now=FRIDAY_OPEN + timedelta(minutes=15))
    [alert] = open_alerts(bot)
    assert alert.value == pytest.approx(15 * 60)  # counted from the open


def heartbeat_source(name: str, schedule: Schedule | None) -> Source:
    return SourceFactory.create(
        name=name, schedule=schedule,
        heartbeat_period=timedelta(seconds=60), heartbeat_grace=timedelta(seconds=60),
    )  # fmt: skip


def heartbeat_alerts(source: Source) -> list[Alert]:
    return [alert for alert in open_alerts(source) if alert.rule.name == "Heartbeat lapsed"]


def test_a_heartbeat_counts_from_the_sessions_open_plus_its_grace(nyse: Schedule) -> None:
    bot = heartbeat_source("equities-bot", nyse)
    beat(bot, ts=WEDNESDAY_CLOSE)

    evaluate(bot, now=THANKSGIVING_NOON)  # a holiday: the market is closed all day
    evaluate(bot, now=FRIDAY_OPEN - timedelta(seconds=1))
    evaluate(bot, now=FRIDAY_OPEN + timedelta(seconds=110))  # within period + grace
    assert not heartbeat_alerts(bot)

    evaluate(bot, now=FRIDAY_OPEN + timedelta(seconds=150))
    [alert] = heartbeat_alerts(bot)
    assert alert.severity == CRITICAL
    assert alert.value == pytest.approx(30)  # seconds past open + period + grace

    # Its first heartbeat of the session resolves it.
    beat(bot, ts=FRIDAY_OPEN + timedelta(seconds=160))
    evaluate(bot, now=FRIDAY_OPEN + timedelta(seconds=170))
    assert not heartbeat_alerts(bot)


def test_a_heartbeat_alert_open_at_the_early_close_rests_until_the_next_session(
    nyse: Schedule,
) -> None:
    bot = heartbeat_source("equities-bot", nyse)
    beat(bot, ts=FRIDAY_OPEN)
    evaluate(bot, now=FRIDAY_EARLY_CLOSE - timedelta(minutes=10))
    [alert] = heartbeat_alerts(bot)
    transitions = AlertTransition.objects.filter(alert=alert).count()

    # Closed at 13:00 (the early close): the pack's rule keeps its alert as it is
    # (missing data: keep) and sends nothing more all weekend.
    for hours in (1, 5, 30, 60):
        evaluate(bot, now=FRIDAY_EARLY_CLOSE + timedelta(hours=hours))
    alert.refresh_from_db()
    assert alert.state == Alert.State.FIRING
    assert AlertTransition.objects.filter(alert=alert).count() == transitions


def test_a_crypto_source_is_unaffected_by_holidays() -> None:
    crypto = heartbeat_source("crypto-bot", None)
    beat(crypto, ts=WEDNESDAY_CLOSE)

    evaluate(crypto, now=THANKSGIVING_NOON)

    [alert] = heartbeat_alerts(crypto)
    assert alert.value == pytest.approx(20 * 3600 - 120)


@pytest.mark.parametrize(
    ("policy", "state", "severity"),
    [
        (Rule.MissingData.RESOLVE, Alert.State.RESOLVED, WARNING),
        (Rule.MissingData.ALERT, Alert.State.FIRING, CRITICAL),
        (Rule.MissingData.KEEP, Alert.State.FIRING, WARNING),
    ],
)
def test_an_alert_open_when_the_session_ends_follows_the_missing_data_policy_once(
    make_rule: MakeRule, new_york_hours: Schedule, policy: str, state: str, severity: int
) -> None:
    rule = make_rule(
        "drawdown_pct", [(WARNING, ">", 10, None), (CRITICAL, ">", 20, None)],
        schedule=new_york_hours, missing_data=policy,
    )  # fmt: skip
    bot = SourceFactory.create(name="equities-bot")
    record(bot, "drawdown_pct", 12, ts=WEDNESDAY_CLOSE - timedelta(minutes=5))
    evaluate(bot, now=WEDNESDAY_CLOSE - timedelta(minutes=1))
    [alert] = open_alerts(bot)
    assert alert.severity == WARNING

    evaluate(bot, now=WEDNESDAY_CLOSE + timedelta(minutes=1))
    alert.refresh_from_db()
    assert (alert.state, alert.severity) == (state, severity)
    if policy == Rule.MissingData.RESOLVE:
        assert alert.resolution == Alert.Resolution.MISSING_DATA
    transitions = AlertTransition.objects.filter(alert=alert).count()

    # Once: later evaluations of the closed market change nothing more.
    evaluate(bot, now=WEDNESDAY_CLOSE + timedelta(hours=3))
    evaluate(bot, now=WEDNESDAY_CLOSE + timedelta(hours=9))
    assert AlertTransition.objects.filter(alert=alert).count() == transitions
    assert rule.alerts.count() == 1


def test_an_evaluation_right_at_the_close_applies_the_missing_data_policy_once(
    make_rule: MakeRule, new_york_hours: Schedule
) -> None:
    rule = make_rule(
        "drawdown_pct", [(WARNING, ">", 10, None), (CRITICAL, ">", 20, None)],
        schedule=new_york_hours, missing_data=Rule.MissingData.ALERT,
    )  # fmt: skip
    bot = SourceFactory.create(name="equities-bot")
    record(bot, "drawdown_pct", 12, ts=WEDNESDAY_CLOSE - timedelta(minutes=5))
    evaluate(bot, now=WEDNESDAY_CLOSE - timedelta(minutes=1))

    evaluate(bot, now=WEDNESDAY_CLOSE)  # beat's tick at 16:00:00, the session's end
    [alert] = open_alerts(bot)
    assert alert.severity == CRITICAL
    transitions = AlertTransition.objects.filter(alert=alert).count()
    count = alert.count

    for minutes in (2, 30, 300):
        evaluate(bot, now=WEDNESDAY_CLOSE + timedelta(minutes=minutes))
    alert.refresh_from_db()
    assert (alert.count, AlertTransition.objects.filter(alert=alert).count()) == (
        count,
        transitions,
    )
    assert rule.alerts.count() == 1


def test_a_rule_on_an_inverted_schedule_rests_during_the_maintenance_window(
    make_rule: MakeRule,
) -> None:
    outside = schedule_create(
        name="not-during-maintenance", kind=Schedule.Kind.WEEKLY,
        windows=["sun 02:00-04:00"], invert=True,
    )  # fmt: skip
    make_rule("exchange_latency_ms", [(WARNING, ">", 5000, None)], schedule=outside)
    bot = SourceFactory.create(name="crypto-bot")
    during = datetime(2025, 11, 30, 3, tzinfo=UTC)
    record(bot, "exchange_latency_ms", 9000, ts=during - timedelta(seconds=10))

    evaluate(bot, now=during)
    assert not open_alerts(bot)

    record(bot, "exchange_latency_ms", 9000, ts=during + timedelta(hours=1, minutes=1))
    evaluate(bot, now=during + timedelta(hours=1, minutes=2))
    assert len(open_alerts(bot)) == 1


# --- silences on a schedule ----------------------------------------------------------------


@pytest.fixture
def maintenance(db: None) -> Schedule:
    return schedule_create(
        name="maintenance", kind=Schedule.Kind.WEEKLY, windows=["sun 02:00-04:00"], zone="UTC"
    )


def test_a_silence_on_a_schedule_needs_no_end_and_mutes_only_during_its_windows(
    source: Source, maintenance: Schedule
) -> None:
    rule = Rule.objects.create(name="latency", metric="exchange_latency_ms")
    alert = make_alert(rule, source)
    sunday = datetime(2025, 11, 30, 3, tzinfo=UTC)

    silence = silence_create(
        reason="exchange maintenance every Sunday", created_by=None, sources=[source],
        schedule=maintenance, starts_at=sunday - timedelta(days=7), now=sunday,
    )  # fmt: skip

    assert silence.ends_at is None
    assert is_silenced(alert, sunday)
    assert alert_silences(alert, now=sunday) == [silence]
    monday = sunday + timedelta(days=1)
    assert not is_silenced(alert, monday)
    assert alert_silences(alert, now=monday) == []
    assert len(active_silences(sunday + timedelta(days=7))) == 1  # every Sunday


def test_a_breach_during_the_window_is_recorded_and_held_back(
    make_rule: MakeRule, maintenance: Schedule
) -> None:
    rule = make_rule("exchange_latency_ms", [(WARNING, ">", 5000, None)])
    bot = SourceFactory.create(name="crypto-bot")
    sunday = datetime(2025, 11, 30, 3, tzinfo=UTC)
    Silence.objects.create(
        reason="maintenance", starts_at=sunday - timedelta(days=1), schedule=maintenance
    ).rules.set([rule])

    record(bot, "exchange_latency_ms", 9000, ts=sunday - timedelta(seconds=5))
    evaluate(bot, now=sunday)
    [alert] = open_alerts(bot)
    firing = AlertTransition.objects.get(alert=alert, kind=AlertTransition.Kind.FIRING)
    assert firing.silenced

    other = SourceFactory.create(name="other-bot")
    monday = sunday + timedelta(days=1)
    record(other, "exchange_latency_ms", 9000, ts=monday - timedelta(seconds=5))
    evaluate(other, now=monday)
    [alert] = open_alerts(other)
    firing = AlertTransition.objects.get(alert=alert, kind=AlertTransition.Kind.FIRING)
    assert not firing.silenced
