"""Alive but not trading: the trading pack's rules on decisions, orders, market data and
order rejects, each with its grace and schedule, and silent for a signal never reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.models import Alert
from metrics.ingest import trade_ingest
from metrics.models import Expectation, Schedule, Source
from metrics.schedules import schedule_create
from metrics.validation import TradeIn
from tests.alerts.conftest import beat, evaluate, open_alerts, record, send_event
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db

WARNING, ERROR = 30, 40
T0 = datetime(2025, 11, 24, 15, tzinfo=UTC)  # a Monday, 10:00 in New York
NY = ZoneInfo("America/New_York")
SIGNAL_RULES = ("No decisions", "No orders", "No market data", "Order reject rate")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def named(source: Source, name: str) -> list[Alert]:
    return [alert for alert in open_alerts(source) if alert.rule.name == name]


def trade(source: Source, ts: datetime) -> None:
    trade_ingest(
        source=source,
        trades=[TradeIn(f"t-{ts.timestamp()}", "AAPL", "buy", 1, 190.0, None, 0.0, ts)],
    )


def test_no_decision_within_the_default_grace_is_a_warning(source: Source) -> None:
    send_event(source, "decision", ts=at(0))

    evaluate(source, now=at(29))
    assert not named(source, "No decisions")

    evaluate(source, now=at(31))
    [alert] = named(source, "No decisions")
    assert alert.severity == WARNING
    assert alert.value == pytest.approx(60)  # seconds past the 30 min grace
    assert "no decision within its grace" in alert.message

    send_event(source, "decision", ts=at(32))
    evaluate(source, now=at(33))
    assert not named(source, "No decisions")


def test_an_order_is_an_order_submitted_event_or_a_trade(source: Source) -> None:
    other = SourceFactory.create(name="other-bot")
    trade(source, at(0))
    send_event(other, "order_submitted", ts=at(0))

    for bot in (source, other):
        evaluate(bot, now=at(59))
        assert not named(bot, "No orders")
        evaluate(bot, now=at(61))
        assert [a.severity for a in named(bot, "No orders")] == [WARNING]


def test_market_data_is_an_event_or_the_tick_an_age_sample_speaks_of(source: Source) -> None:
    # At T0 the bot says its newest tick is 2 minutes old: the tick was at T0 - 2 min.
    record(source, "market_data_age_ms", 120_000, ts=at(0))

    evaluate(source, now=at(2.9))
    assert not named(source, "No market data")
    evaluate(source, now=at(3.5))
    [alert] = named(source, "No market data")
    assert alert.severity == ERROR
    assert alert.value == pytest.approx(30)

    send_event(source, "market_data", ts=at(4))
    evaluate(source, now=at(4.5))
    assert not named(source, "No market data")


def test_a_source_that_never_reports_a_signal_is_never_alerted_about_it(source: Source) -> None:
    for minutes in range(0, 7 * 24 * 60, 6 * 60):
        beat(source, ts=at(minutes))
    record(source, "equity", 1000, ts=at(0))

    evaluate(source, now=at(7 * 24 * 60))

    assert not [alert for alert in open_alerts(source) if alert.rule.name in SIGNAL_RULES]


def test_an_expectation_sets_its_own_grace_and_can_be_switched_off(source: Source) -> None:
    Expectation.objects.create(source=source, signal="decision", grace=timedelta(minutes=5))
    Expectation.objects.create(source=source, signal="order", enabled=False)
    send_event(source, "decision", ts=at(0))
    send_event(source, "order_submitted", ts=at(0))

    evaluate(source, now=at(6))
    assert len(named(source, "No decisions")) == 1
    evaluate(source, now=at(24 * 60))
    assert not named(source, "No orders")


def test_switching_an_expectation_off_resolves_its_open_alert(source: Source) -> None:
    send_event(source, "decision", ts=at(0))
    evaluate(source, now=at(31))
    [alert] = named(source, "No decisions")

    Expectation.objects.create(source=source, signal="decision", enabled=False)
    evaluate(source, now=at(32))

    alert.refresh_from_db()
    assert alert.resolution == Alert.Resolution.RULE_CHANGED


def test_the_reject_rate_counts_over_the_window_once_there_are_ten_orders(source: Source) -> None:
    for i in range(7):
        send_event(source, "order_submitted", ts=at(i))
    for i in range(3):
        send_event(source, "order_rejected", ts=at(i + 0.5))
    evaluate(source, now=at(8))
    # 3 of 7 orders is 43 %, but 7 orders say too little yet.
    assert not named(source, "Order reject rate")

    for i in range(3):
        send_event(source, "order_submitted", ts=at(8 + i))
    evaluate(source, now=at(11))
    [alert] = named(source, "Order reject rate")
    assert alert.value == pytest.approx(30)  # 3 rejected of 10 orders

    # Past the window (15 min) the rejects age out: 0 % of the orders in it.
    for i in range(10):
        send_event(source, "order_submitted", ts=at(20 + i / 10))
    evaluate(source, now=at(22))
    assert not named(source, "Order reject rate")


def test_a_signal_rests_outside_its_schedule_and_counts_from_the_open() -> None:
    nyse = schedule_create(name="nyse", kind=Schedule.Kind.EXCHANGE, exchange="XNYS")
    bot = SourceFactory.create(name="equities-bot", schedule=nyse)
    wednesday_close = datetime(2025, 11, 26, 16, tzinfo=NY)
    friday_open = datetime(2025, 11, 28, 9, 30, tzinfo=NY)
    send_event(bot, "decision", ts=wednesday_close - timedelta(minutes=10))

    evaluate(bot, now=datetime(2025, 11, 27, 12, tzinfo=NY))  # Thanksgiving
    evaluate(bot, now=friday_open + timedelta(minutes=29))
    assert not named(bot, "No decisions")

    evaluate(bot, now=friday_open + timedelta(minutes=31))
    [alert] = named(bot, "No decisions")
    assert alert.value == pytest.approx(60)  # counted from the open, not from Wednesday


def test_an_expectation_may_follow_a_schedule_of_its_own(source: Source) -> None:
    feed_hours = schedule_create(
        name="feed-hours", kind=Schedule.Kind.WEEKLY, windows=["mon-fri 14:00-21:00"]
    )
    Expectation.objects.create(source=source, signal="market_data", schedule=feed_hours)
    send_event(source, "market_data", ts=at(0))  # Monday 15:00 UTC

    evaluate(source, now=at(6 * 60 + 30))  # 21:30: the feed's day is over
    assert not named(source, "No market data")
    evaluate(source, now=at(6 * 60 - 50))  # 20:10: within its hours, long silent
    assert len(named(source, "No market data")) == 1


def test_a_lapsed_heartbeat_mutes_the_signals_of_a_dead_bot(source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(
        heartbeat_period=timedelta(seconds=30), heartbeat_grace=timedelta(seconds=30)
    )
    beat(source, ts=at(0))
    send_event(source, "decision", ts=at(0))
    evaluate(source, now=at(40))
    evaluate(source, now=at(41))  # the heartbeat's alert is open now

    [alert] = named(source, "No decisions")
    assert alert.inhibited
    assert len(named(source, "Heartbeat lapsed")) == 1
