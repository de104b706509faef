"""The operations digest: when it is due, what it says (checked against figures this test
computes from the raw rows itself), sent once per period however many beats run, through
the outbox, and printed by `tradewatch digest --preview`."""

from __future__ import annotations

import io
import json
import random
import statistics
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from alerts.channels.email import EmailChannel
from alerts.channels.signing import signing_secret_new
from alerts.delivery import notification_deliver, notification_message
from alerts.models import (
    Alert,
    AlertTransition,
    Channel,
    DeliveryAttempt,
    DigestRun,
    Notification,
    Policy,
    Rule,
    Severity,
)
from health.models import HealthCheck, HealthReport
from metrics.models import MetricSample, MetricSeries, Source, Tag, Trade
from monitoring_site.digest import Period, digest_build, digests_send, due_periods, latest_periods
from monitoring_site.digest_render import equity_svg, text
from monitoring_site.management.commands.tradewatch import Command
from tests.factories import SourceFactory, make_alert
from tests.receivers import Receiver, receiver

LONDON = ZoneInfo("Europe/London")
# The period's end: 2026-03-10 08:00 in London (GMT, so 08:00 UTC), a Tuesday.
END = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
START = END - timedelta(days=1)


# --- when ---------------------------------------------------------------------------------


def test_a_daily_digest_covers_the_local_day_before_its_time_across_a_clock_change() -> None:
    # London moved to summer time on Sunday 2026-03-29 at 01:00 UTC.
    now = datetime(2026, 3, 29, 7, 30, tzinfo=UTC)  # 08:30 BST
    (daily,) = latest_periods(daily=True, weekly_day=None, at=time(8), zone=LONDON, now=now)
    assert daily.end == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert daily.start == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 08:00 GMT: 23 hours
    earlier = datetime(2026, 3, 29, 6, 59, tzinfo=UTC)  # 07:59 BST: yesterday's is the latest
    (before,) = latest_periods(daily=True, weekly_day=None, at=time(8), zone=LONDON, now=earlier)
    assert before.end == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)


def test_a_weekly_digest_covers_the_seven_days_before_its_day_and_time() -> None:
    now = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)  # Thursday
    (weekly,) = latest_periods(daily=False, weekly_day=0, at=time(9), zone=ZoneInfo("UTC"), now=now)
    assert weekly.end == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Monday 09:00
    assert weekly.start == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert weekly.kind == "weekly"


@pytest.mark.django_db
def test_a_digest_is_due_from_its_time_for_a_few_hours_only() -> None:
    policy = Policy.objects.create(
        name="desk",
        digest_daily=True,
        digest_weekly_day=1,
        digest_time=time(8),
        digest_timezone="Europe/London",
    )
    assert [p.kind for p in due_periods(policy, END)] == ["daily", "weekly"]  # a Tuesday
    assert [p.kind for p in due_periods(policy, END + timedelta(hours=5))] == [
        "daily", "weekly",
    ]  # fmt: skip
    assert due_periods(policy, END + timedelta(hours=7)) == []  # beat was away too long
    assert [p.kind for p in due_periods(policy, END + timedelta(days=1))] == ["daily"]


# --- what ---------------------------------------------------------------------------------


def _series(source: Source, name: str) -> MetricSeries:
    return MetricSeries.objects.create(source=source, name=name, labels={}, labels_key="{}")


def _scatter(rng: random.Random, n: int) -> list[datetime]:
    """`n` moments from 9 days before the end to an hour after it."""
    span = int(timedelta(days=9, hours=1).total_seconds())
    return sorted(
        END - timedelta(days=9) + timedelta(seconds=rng.randrange(span)) for _ in range(n)
    )


@pytest.fixture
def desk(db: None) -> Policy:
    """A policy over two sources (one named, one tagged) with raw rows of every kind for
    them, and the same kinds of rows for a source outside its scope."""
    rng = random.Random(21)
    tag = Tag.objects.create(name="desk")
    alpha, beta = SourceFactory.create(name="alpha"), SourceFactory.create(name="beta")
    beta.tags.add(tag)
    outside = SourceFactory.create(name="outside")
    channel = Channel.objects.create(name="desk-console", kind=Channel.Kind.CONSOLE)
    policy = Policy.objects.create(
        name="desk",
        min_severity=Severity.WARNING,
        digest_daily=True,
        digest_time=time(8),
        digest_timezone="Europe/London",
    )
    policy.sources.add(alpha)
    policy.tags.add(tag)
    policy.channels.add(channel)
    rule = Rule.objects.create(name="Digest drawdown", metric="drawdown_pct")
    heartbeat = Rule.objects.create(name="Digest heartbeat", metric="heartbeat", kind="absence")
    person = None
    for source in (alpha, beta, outside):
        trades = []
        for n, ts in enumerate(_scatter(rng, 60)):
            closing = rng.random() < 0.7
            pnl = round(rng.uniform(-50, 60), 2) if closing else None
            fee = round(rng.uniform(0, 2), 2)
            trades.append(Trade(source=source, trade_id=f"t{n}", symbol="BTC/USDT", side="buy",
                                quantity=1, price=100, pnl=pnl, fee=fee, ts=ts))  # fmt: skip
        Trade.objects.bulk_create(trades)
        equity, drawdown = _series(source, "equity"), _series(source, "drawdown_pct")
        value = 10_000.0
        for ts in _scatter(rng, 80):
            value += rng.uniform(-150, 140)
            MetricSample.objects.create(series=equity, ts=ts, value=value)
            MetricSample.objects.create(series=drawdown, ts=ts, value=rng.uniform(0, 25))
        check = HealthCheck.objects.create(name=f"{source.name} beat", kind="heartbeat",
                                           source=source)  # fmt: skip
        for ts in _scatter(rng, 20):
            HealthReport.objects.create(
                health_check=check,
                created_at=ts,
                status="healthy",
                check_status="healthy",
                score=rng.randrange(20, 100),
            )
        for ts in _scatter(rng, 12):
            severity = rng.choice([Severity.INFO, Severity.WARNING, Severity.CRITICAL])
            resolved = ts + timedelta(minutes=rng.randrange(1, 600)) if rng.random() < 0.6 else None
            alert = make_alert(
                rng.choice([rule, heartbeat]), source, severity=severity, at=ts,
                state=Alert.State.RESOLVED if resolved else Alert.State.FIRING,
            )  # fmt: skip
            Alert.objects.filter(pk=alert.pk).update(resolved_at=resolved)
            if rng.random() < 0.5:
                for minutes in sorted(rng.sample(range(1, 300), 2)):  # the first one counts
                    AlertTransition.objects.create(
                        alert=alert, at=ts + timedelta(minutes=minutes), kind="acknowledged",
                        severity=severity, actor=person,
                    )  # fmt: skip
            for state in rng.choices(["sent", "failed", "pending"], k=2):
                Notification.objects.create(
                    alert=alert, channel=channel, policy=policy, event="firing",
                    severity=severity, state=state, created_at=ts, next_attempt_at=ts,
                )  # fmt: skip
    return policy


def expected(policy: Policy) -> dict[str, Any]:
    """The digest's figures, computed here from the raw rows in plain Python."""
    from metrics import trading

    period_start, end = START, END
    scope = [s for s in Source.objects.order_by("name") if s.name in ("alpha", "beta")]
    sources = {}
    for source in scope:
        rows = list(Trade.objects.filter(source=source))
        as_trades = [trading.Trade(ts=t.ts, symbol=t.symbol, side="buy", quantity=t.quantity,
                                   price=t.price, pnl=t.pnl, fee=t.fee) for t in rows]  # fmt: skip
        in_period = [t for t in as_trades if period_start <= t.ts < end]
        drawdowns = [
            (s.ts, s.value)
            for s in MetricSample.objects.filter(series__source=source, series__name="drawdown_pct")
        ]
        scores = [r.score for r in HealthReport.objects.filter(health_check__source=source)
                  if period_start <= r.created_at < end]  # fmt: skip
        lapses = [a for a in Alert.objects.filter(source=source, rule__metric="heartbeat")
                  if a.fired_at and period_start <= a.fired_at < end]  # fmt: skip
        sources[source.name] = {
            "pnl_day": trading.pnl_between(as_trades, end - timedelta(days=1), end),
            "pnl_week": trading.pnl_between(as_trades, end - timedelta(days=7), end),
            "drawdown_now": max((d for d in drawdowns if d[0] < end), default=(None, None))[1],
            "drawdown_max": max(
                (v for ts, v in drawdowns if period_start <= ts < end), default=None
            ),
            "trades": trading.trade_count(in_period),
            "win_rate": trading.win_rate_pct(in_period),
            "lowest_score": min(scores, default=None),
            "heartbeat_lapses": len(lapses),
        }
    alerts = [a for a in Alert.objects.filter(source__in=scope)
              if a.severity >= policy.min_severity]  # fmt: skip
    opened = [a for a in alerts if a.fired_at and period_start <= a.fired_at < end]
    acks = []
    for alert in opened:
        times = [t.at for t in alert.timeline.filter(kind="acknowledged") if t.at < end]
        if times:
            acks.append((min(times) - alert.fired_at).total_seconds())  # type: ignore[operator]
    resolves = [(a.resolved_at - a.fired_at).total_seconds() for a in opened  # type: ignore[operator]
                if a.resolved_at and a.resolved_at < end]  # fmt: skip
    notifications = [n for n in Notification.objects.filter(policy=policy)
                     if period_start <= n.created_at < end]  # fmt: skip
    return {
        "sources": sources,
        "opened": {label.upper(): sum(1 for a in opened if Severity(a.severity).label == label)
                   for label in ("Emergency", "Critical", "Error", "Warning", "Info", "Debug")},
        "acknowledged": len(acks),
        "ack_median": statistics.median(acks) if acks else None,
        "ack_longest": max(acks, default=None),
        "resolved": len(resolves),
        "resolve_median": statistics.median(resolves) if resolves else None,
        "resolve_longest": max(resolves, default=None),
        "still_open": sum(1 for a in alerts if a.fired_at and a.fired_at < end
                          and (a.resolved_at is None or a.resolved_at >= end)),
        "sent": sum(1 for n in notifications if n.state == "sent"),
        "failed": sum(1 for n in notifications if n.state == "failed"),
    }  # fmt: skip


def test_its_figures_are_those_computed_from_the_raw_rows(desk: Policy) -> None:
    want = expected(desk)
    digest = digest_build(desk, Period("daily", START, END))

    got_sources = {
        f.name: {
            key: value for key, value in vars(f).items() if key not in ("id", "name", "equity")
        }
        for f in digest.sources
    }
    assert list(got_sources) == ["alpha", "beta"]  # the named and the tagged, not "outside"
    for name, figures in want["sources"].items():
        for key, value in figures.items():
            assert got_sources[name][key] == pytest.approx(value), (name, key)
    incidents = digest.incidents
    assert incidents.opened == want["opened"]
    assert incidents.total > 0
    assert (incidents.acknowledged, incidents.resolved, incidents.still_open) == (
        want["acknowledged"], want["resolved"], want["still_open"],
    )  # fmt: skip
    assert incidents.ack_median_seconds == pytest.approx(want["ack_median"])
    assert incidents.ack_longest_seconds == pytest.approx(want["ack_longest"])
    assert incidents.resolve_median_seconds == pytest.approx(want["resolve_median"])
    assert incidents.resolve_longest_seconds == pytest.approx(want["resolve_longest"])
    assert (digest.sent, digest.failed) == (want["sent"], want["failed"])
    # Equity for the chart: the period's samples, one per bucket, in time order.
    for figures in digest.sources:
        assert figures.equity
        assert all(START <= ts < END for ts, _ in figures.equity)
        assert [ts for ts, _ in figures.equity] == sorted(ts for ts, _ in figures.equity)


def test_its_text_names_each_figure_and_its_email_draws_each_equity(desk: Policy) -> None:
    digest = digest_build(desk, Period("daily", START, END))
    words = text(digest)
    assert words.startswith("Daily operations digest: desk, 2026-03-09 08:00 to 2026-03-10 08:00")
    alpha = next(f for f in digest.sources if f.name == "alpha")
    line = next(line for line in words.splitlines() if line.startswith("- alpha:"))
    assert f"PnL day {alpha.pnl_day:+,.2f}, week {alpha.pnl_week:+,.2f}" in line
    assert f"{alpha.trades} trades" in line
    assert "Incidents: " in words
    assert "still open" in words
    assert f"Delivery: {digest.sent} notifications sent, {digest.failed} failed" in words
    svg = equity_svg(alpha.equity)
    assert svg.startswith("<svg")
    assert "<polyline" in svg
    assert svg.count(",") == len(alpha.equity)  # one x,y pair per point


# --- once per period, through the outbox, from the command line ---------------------------


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def webhook(hook: Receiver, name: str) -> Channel:
    channel = Channel(name=name, kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/{name}"},
                      rate_limit=1)  # fmt: skip
    channel.secrets = {"signing_secret": signing_secret_new()}
    channel.full_clean()
    channel.save()
    return channel


@pytest.mark.django_db(transaction=True)
def test_two_beats_at_once_send_each_digest_once(hook: Receiver) -> None:
    SourceFactory.create(name="gamma")
    policy = Policy.objects.create(
        name="desk",
        digest_daily=True,
        digest_weekly_day=1,
        digest_time=time(8),
        digest_timezone="Europe/London",
    )
    policy.channels.add(webhook(hook, "a"), webhook(hook, "b"))
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def beat() -> None:
        try:
            barrier.wait(10)
            counts.append(digests_send(now=END + timedelta(seconds=30)))
        finally:
            connections.close_all()

    beats = [threading.Thread(target=beat) for _ in range(2)]
    for thread in beats:
        thread.start()
    for thread in beats:
        thread.join(60)

    assert sum(counts) == 2  # the daily and the weekly, each by one of the two beats
    runs = DigestRun.objects.order_by("kind")
    assert [(run.kind, run.period_end, run.notifications) for run in runs] == [
        ("daily", END, 2), ("weekly", END, 2),
    ]  # fmt: skip
    assert Notification.objects.filter(event="operations_digest").count() == 4
    # A minute later, the same period: nothing more.
    assert digests_send(now=END + timedelta(seconds=90)) == 0
    # The next day's: sent.
    assert digests_send(now=END + timedelta(days=1, seconds=5)) == 1


@pytest.mark.django_db
def test_it_goes_out_through_the_outbox_past_the_rate_limit_with_its_figures(
    hook: Receiver, desk: Policy
) -> None:
    channel = webhook(hook, "desk-hook")
    desk.channels.set([channel])
    # The channel's rate limit (one a minute) is used up: a digest still goes out.
    Notification.objects.create(
        channel=channel,
        event="firing",
        severity=30,
        state="sent",
        created_at=END,
        next_attempt_at=END,
        rate_slot_at=timezone.now(),
    )
    assert digests_send(now=END + timedelta(minutes=1)) == 1
    (notification,) = Notification.objects.filter(event="operations_digest")
    assert notification_deliver(notification_id=notification.pk).state == "sent"
    assert DeliveryAttempt.objects.filter(notification=notification, ok=True).count() == 1
    body = json.loads(hook.bodies()[-1])
    assert body["event"] == "operations_digest"
    report = body["report"]
    assert report["title"].startswith("Daily operations digest: desk")
    assert [s["name"] for s in report["sources"]] == ["alpha", "beta"]
    assert "html" not in report
    assert body["alert"]["message"] == report["text"]

    email = EmailChannel.html_part(notification_message(notification))
    assert email.count("<svg") == 2  # one equity chart per source
    assert "Daily operations digest: desk" in email


@pytest.mark.django_db
def test_the_preview_prints_it_and_sends_nothing_and_sending_it_is_once(desk: Policy) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("tradewatch", "digest", "--policy", "desk", "--preview", stdout=out, stderr=err)
    printed = out.getvalue()
    assert printed.startswith("Daily operations digest: desk")
    assert "- alpha: PnL day" in printed
    assert "- beta: PnL day" in printed
    assert "outside" not in printed
    assert not Notification.objects.filter(event="operations_digest").exists()

    html = io.StringIO()
    call_command("tradewatch", "digest", "--policy", "desk", "--preview", "--html", stdout=html)
    assert html.getvalue().startswith("<html>")

    call_command("tradewatch", "digest", "--policy", "desk", stdout=out, stderr=err)
    assert Notification.objects.filter(event="operations_digest").count() == 1
    again = Command()
    call_command(again, "digest", "--policy", "desk", stdout=out, stderr=err)
    assert again.exit_code == 1
    assert "sent already" in err.getvalue()
    assert Notification.objects.filter(event="operations_digest").count() == 1
