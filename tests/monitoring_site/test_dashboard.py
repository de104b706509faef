"""The dashboard's state: one health scoring with the API, and no watchdog among problems."""

from __future__ import annotations

import pytest
from django.utils import timezone

from alerts.evaluation import forget_rules_cache
from alerts.models import Alert, Rule, Severity
from health.selfmonitoring import self_check, tradewatch_queues, worker_presence_record
from metrics.ingest import event_ingest, heartbeat_record
from metrics.validation import EventIn, HeartbeatIn
from monitoring_site.dashboard import dashboard_state
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


def test_it_leaves_the_always_firing_watchdog_out_of_firing_alerts_and_health() -> None:
    forget_rules_cache()
    worker_presence_record(name="everything@host", queues=tradewatch_queues())
    self_check()
    assert Alert.objects.filter(rule__name="Tradewatch watchdog", state="firing").exists()
    bot = SourceFactory.create(name="calm-bot")
    heartbeat_record(source=bot, heartbeat=HeartbeatIn("ok", {}, timezone.now()))
    event_ingest(source=bot, events=[EventIn("decision", "", {}, timezone.now())])

    state = dashboard_state()

    assert state["firing"]["total"] == 0
    assert state["firing"]["alerts"] == []
    assert {item["label"]: item["count"] for item in state["firing"]["by_severity"]}["Info"] == 0
    assert state["system"]["status"] == "healthy"
    assert state["system"]["tradewatch_issues"] == []
    assert [(row["name"], row["score"], row["status"]) for row in state["sources"]] == [
        ("calm-bot", 100, "healthy")
    ]


def test_it_never_shows_a_source_healthy_while_a_critical_alert_fires_on_it() -> None:
    bot = SourceFactory.create(name="calm-bot")
    heartbeat_record(source=bot, heartbeat=HeartbeatIn("ok", {}, timezone.now()))
    event_ingest(source=bot, events=[EventIn("decision", "", {}, timezone.now())])
    now = timezone.now()
    Alert.objects.create(
        fingerprint="leverage", rule=Rule.objects.get(name="Leverage"), source=bot,
        state="firing", severity=Severity.CRITICAL, message="calm-bot: leverage 3.40x",
        first_seen=now, fired_at=now, last_seen=now,
    )  # fmt: skip

    state = dashboard_state()

    [row] = state["sources"]
    assert (row["score"], row["status_label"], row["open_alerts"]) == (29, "CRITICAL", 1)
    assert row["issues"][0] == "CRITICAL alert firing: Leverage \u2014 leverage 3.40x"
    assert state["system"]["status"] == "critical"
    assert state["firing"]["total"] == 1


def test_a_source_outside_its_session_is_market_closed_and_an_idle_one_says_why() -> None:
    from datetime import UTC, datetime, timedelta

    from metrics.models import Schedule

    nyse = Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")
    equities = SourceFactory.create(name="spy-bot", schedule=nyse)
    crypto = SourceFactory.create(name="btc-bot")
    thanksgiving = datetime(2025, 11, 27, 17, tzinfo=UTC)  # noon in New York, a holiday
    last_night = thanksgiving - timedelta(hours=20)
    for bot in (equities, crypto):
        heartbeat_record(source=bot, heartbeat=HeartbeatIn("ok", {}, last_night))
        event_ingest(source=bot, events=[EventIn("decision", "", {}, last_night)])
    heartbeat_record(source=crypto, heartbeat=HeartbeatIn("ok", {}, thanksgiving))
    event_ingest(source=crypto, events=[EventIn("order_submitted", "", {}, last_night)])

    rows = {row["name"]: row for row in dashboard_state(now=thanksgiving)["sources"]}

    assert rows["spy-bot"]["market_closed"]
    assert rows["spy-bot"]["status"] == "healthy"
    assert rows["spy-bot"]["issues"] == ["market closed, nyse opens Fri 14:30 UTC (in 21h30m)"]
    assert not rows["btc-bot"]["market_closed"]
    assert "no order for 20 h (limit 60 min)" in rows["btc-bot"]["issues"]
    assert "no decision for 20 h (limit 30 min)" in rows["btc-bot"]["issues"]
