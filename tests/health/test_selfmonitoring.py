"""Tradewatch alerts about itself through its own rules, lifecycle and channels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from alerts.channels.signing import signing_secret_new
from alerts.evaluation import forget_rules_cache
from alerts.models import Alert, Channel, Notification, Policy, Rule, Severity
from health.models import PeriodicRun, ProcessHeartbeat
from health.selfmonitoring import (
    install_self_monitoring_rules,
    self_check,
    tradewatch_queues,
    worker_presence_record,
)
from metrics.services import system_source
from tests.processes import broker_purge, celery_worker, process_environment, wait_until
from tests.receivers import receiver


@pytest.fixture(autouse=True)
def _rules() -> Iterator[None]:
    install_self_monitoring_rules()
    forget_rules_cache()
    yield
    forget_rules_cache()


def alerts_of(rule_name: str) -> list[Alert]:
    return list(Alert.objects.filter(rule__name=rule_name).order_by("pk"))


def all_workers_alive(now: object = None) -> None:
    worker_presence_record(name="everything@host", queues=tradewatch_queues())


@pytest.mark.django_db
def test_it_installs_its_rules_once_on_the_system_source() -> None:
    rules = Rule.objects.filter(pack="self")

    assert set(rules.values_list("name", flat=True)) == {
        "Tradewatch beat not ticking",
        "Tradewatch workers absent",
        "Tradewatch queue backlog growing",
        "Tradewatch watchdog",
    }
    assert {rule.source_id for rule in rules} == {system_source().pk}
    Rule.objects.filter(name="Tradewatch watchdog").delete()
    assert install_self_monitoring_rules() == 0  # a deleted rule stays deleted


@pytest.mark.django_db
def test_it_alerts_when_beat_stops_ticking_and_resolves_when_it_ticks_again() -> None:
    all_workers_alive()
    now = timezone.now()
    ProcessHeartbeat.objects.create(role="beat", name="beat", last_seen=now - timedelta(minutes=3))

    measured = self_check(now=now)

    assert measured["beat_tick_age_seconds"] == pytest.approx(180, abs=1)
    [alert] = alerts_of("Tradewatch beat not ticking")
    assert (alert.state, alert.severity, alert.source.name) == (
        "firing",
        Severity.CRITICAL,
        "tradewatch",
    )
    assert alert.message == "Beat has not ticked for 180 s"

    ProcessHeartbeat.objects.filter(role="beat").update(last_seen=now + timedelta(seconds=20))
    self_check(now=now + timedelta(seconds=30))

    alert.refresh_from_db()
    assert alert.state == "resolved"


@pytest.mark.django_db
def test_it_alerts_per_queue_when_no_worker_consumes_it() -> None:
    now = timezone.now()
    worker_presence_record(name="ingest@host", queues=["ingest"], now=now)
    worker_presence_record(name="old@host", queues=["delivery"], now=now - timedelta(minutes=5))

    measured = self_check(now=now)

    assert measured["workers_alive"] == {"default": 0, "delivery": 0, "health": 0, "ingest": 1}
    absent = alerts_of("Tradewatch workers absent")
    assert sorted(alert.labels["queue"] for alert in absent) == ["default", "delivery", "health"]
    assert {alert.state for alert in absent} == {"firing"}


@pytest.mark.django_db
def test_it_keeps_the_watchdog_firing_and_repeats_it_on_schedule(settings: Settings) -> None:
    settings.TRADEWATCH_REPEAT_SECONDS = {**settings.TRADEWATCH_REPEAT_SECONDS, "INFO": 60}
    all_workers_alive()
    channel = Channel.objects.create(name="dead man's switch", kind=Channel.Kind.CONSOLE)
    policy = Policy.objects.create(name="watchdog", min_severity=Severity.INFO)
    policy.channels.set([channel])
    policy.rules.set([Rule.objects.get(name="Tradewatch watchdog")])
    now = timezone.now()

    for seconds in range(0, 181, 30):  # the self-check's cadence, for three minutes
        self_check(now=now + timedelta(seconds=seconds))

    [watchdog] = alerts_of("Tradewatch watchdog")
    assert watchdog.state == "firing"
    events = list(
        Notification.objects.filter(alert=watchdog)
        .order_by("created_at")
        .values_list("event", flat=True)
    )
    # Fired once, then repeated every INFO repeat interval (60 s) for as long as it runs.
    assert events == ["firing", "repeat", "repeat", "repeat"]


@pytest.mark.django_db(transaction=True)
def test_it_sends_its_own_alerts_itself_when_no_delivery_worker_is_alive() -> None:
    worker_presence_record(name="ingest@host", queues=["ingest", "default", "health"])
    with receiver() as hook:
        channel = Channel(
            name="ops", kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/ops"}, rate_limit=0
        )
        channel.secrets = {"signing_secret": signing_secret_new()}
        channel.full_clean()
        channel.save()
        policy = Policy.objects.create(name="ops", min_severity=Severity.WARNING)
        policy.channels.set([channel])

        self_check()

        assert wait_until(lambda: len(hook.requests) >= 1, 10)
    bodies = [json.loads(request.body) for request in hook.requests]
    assert {(body["event"], body["alert"]["rule"]) for body in bodies} == {
        ("firing", "Tradewatch workers absent")
    }
    assert Notification.objects.filter(state="sent").count() == len(bodies)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_notices_a_dead_beat_from_a_worker_alone(tmp_path: Path) -> None:
    broker_purge()
    ProcessHeartbeat.objects.create(
        role="beat", name="beat", last_seen=timezone.now() - timedelta(minutes=10)
    )
    env = process_environment(
        TRADEWATCH_WORKER_HEARTBEAT_SECONDS="0.5", TRADEWATCH_SELF_CHECK_SECONDS="1"
    )
    with celery_worker(env, name="selfcheck", log_path=tmp_path / "worker.log"):
        assert wait_until(
            lambda: Alert.objects.filter(
                rule__name="Tradewatch beat not ticking", state="firing"
            ).exists(),
            60,
        ), (tmp_path / "worker.log").read_text()[-3000:]
        worker = ProcessHeartbeat.objects.get(role="worker")
    broker_purge()

    assert worker.name.startswith("selfcheck-")
    assert worker.queues == "default,delivery,health,ingest"
    assert PeriodicRun.objects.get(name="Self-monitoring").runs >= 1
