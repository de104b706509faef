"""Delivery through real workers, and what faults do to it: nothing is lost.

Workers are real Celery processes; receivers are real HTTP servers on loopback; the
Redis that is restarted is the test's own, on a spare port.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from alerts.channels.signing import signing_secret_new
from alerts.delivery import outbox_sweep
from alerts.models import Alert, Channel, DeliveryAttempt, Notification, Policy, Rule, Severity
from alerts.payloads import notification_test_payload
from alerts.routing import notifications_create
from health.models import HealthCheck
from health.runner import checks_run_due
from metrics.services import source_create
from monitoring_site.schedule import install_periodic_tasks
from tests.health.conftest import recovery_channel, unused_port
from tests.processes import (
    BASE_DIR,
    broker_purge,
    celery_worker,
    free_port,
    process_environment,
    stop,
    wait_until,
)
from tests.receivers import Answer, Receiver, receiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Timings shortened for the tests, the same in this process and in the workers.
TIMINGS = {
    "TRADEWATCH_DELIVERY_LEASE_SECONDS": "4",
    "TRADEWATCH_DELIVERY_REQUEUE_SECONDS": "3",
    "TRADEWATCH_DELIVERY_BACKOFF_SECONDS": "0.2",
    "TRADEWATCH_DELIVERY_BACKOFF_MAX_SECONDS": "1",
    "TRADEWATCH_DELIVERY_MAX_ATTEMPTS": "40",
    "TRADEWATCH_DELIVERY_TIMEOUT_SECONDS": "2",
    "TRADEWATCH_DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
}


@pytest.fixture(autouse=True)
def _empty_queues() -> Iterator[None]:
    # The sweeper queues rows again while earlier copies still wait: leave no backlog.
    broker_purge()
    yield
    broker_purge()


@pytest.fixture(autouse=True)
def _same_timings(settings: Settings) -> None:
    for name, value in TIMINGS.items():
        if name != "TRADEWATCH_DELIVERY_ALLOWED_NETWORKS":
            setattr(settings, name, float(value))
    settings.TRADEWATCH_DELIVERY_MAX_ATTEMPTS = int(TIMINGS["TRADEWATCH_DELIVERY_MAX_ATTEMPTS"])


def worker_env(**overrides: str) -> dict[str, str]:
    return process_environment(**TIMINGS, **overrides)


def webhook_channel(url: str, name: str = "hook") -> Channel:
    channel = Channel(name=name, kind=Channel.Kind.WEBHOOK, config={"url": url}, rate_limit=0)
    channel.secrets = {"signing_secret": signing_secret_new()}
    channel.full_clean()
    channel.save()
    return channel


def queue_tests(channel: Channel, count: int) -> list[Notification]:
    """`count` notifications in the outbox, queued on commit as the lifecycle queues them."""
    from django.db import transaction

    with transaction.atomic():
        return notifications_create(
            [
                Notification(
                    channel=channel,
                    event=Notification.Event.FIRING,
                    severity=Severity.WARNING,
                    payload=notification_test_payload(
                        severity=Severity.WARNING, message=f"number {i}"
                    ),
                )
                for i in range(count)
            ],
            at=timezone.now(),
        )


def arrivals(hook: Receiver) -> Counter[str]:
    return Counter(request.headers["webhook-id"] for request in list(hook.requests))


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """kill -9 the worker and its pool processes, as a crash or the OOM killer would."""
    parent = psutil.Process(process.pid)
    for child in parent.children(recursive=True):
        child.send_signal(signal.SIGKILL)
    parent.send_signal(signal.SIGKILL)
    process.wait()


def test_it_delivers_a_posted_breach_to_the_webhook_through_real_workers() -> None:
    _, key = source_create(name="e2e-delivery-bot")
    with receiver() as hook:
        channel = webhook_channel(f"{hook.url}/alerts")
        Policy.objects.create(name="all", min_severity=Severity.WARNING).channels.set([channel])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        with celery_worker(worker_env(), queues="ingest,delivery"):
            response = client.post(
                "/api/v1/metrics",
                json.dumps({"samples": [{"name": "leverage", "value": 4.5}]}),
                content_type="application/json",
            )
            assert response.status_code == 202
            assert wait_until(lambda: len(hook.requests) >= 1, 60)

        from standardwebhooks.webhooks import Webhook

        [request] = hook.requests
        body = Webhook(channel.secrets["signing_secret"]).verify(request.body, request.headers)
        assert (body["event"], body["alert"]["rule"], body["alert"]["severity"]) == (
            "firing", "Leverage", "CRITICAL",
        )  # fmt: skip
        notification = Notification.objects.get(channel=channel)
        assert notification.state == Notification.State.SENT
        assert notification.alert == Alert.objects.get(rule__name="Leverage")


@pytest.mark.parametrize("kind", ["webhook", "recovery"])
def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_keep_their_webhook_id(
    tmp_path: Path, kind: str
) -> None:
    with receiver(Answer(delay=0.05)) as hook:
        # A recovery action goes through the same outbox, leases and sweeper.
        channel = webhook_channel(hook.url) if kind == "webhook" else recovery_channel(hook.url)[0]
        notifications = queue_tests(channel, 200)
        with celery_worker(worker_env(), queues="delivery", name="doomed") as doomed:
            assert wait_until(lambda: len(hook.requests) >= 40, 60)
            kill_hard(doomed)
        delivered_before = len(arrivals(hook))
        assert delivered_before < 200, "the kill came too late to test anything"

        with celery_worker(worker_env(), queues="delivery", name="successor"):
            # Beat's sweeper, run here: it queues what the dead worker held.
            def all_arrived() -> bool:
                outbox_sweep()
                return len(arrivals(hook)) == 200

            assert wait_until(all_arrived, 120, interval=1.0)
            assert wait_until(lambda: Notification.objects.filter(state="sent").count() == 200, 30)

    counts = arrivals(hook)
    expected = {notification.webhook_id for notification in notifications}
    assert set(counts) == expected
    assert max(counts.values()) <= 2
    # A duplicate is a notification the dead worker sent but could not mark sent.
    assert sum(counts.values()) - 200 <= 2


@pytest.fixture
def spare_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A Redis of the test's own on a spare loopback port, keeping nothing on disk."""
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (make services installs it)"
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        assert wait_until(lambda: _pings(redis.Redis(port=port)), 10)
        return process

    state = {"process": start()}

    def restart() -> None:
        stop(state["process"])
        state["process"] = start()

    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        stop(state["process"])


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_queued_deliveries_survive_a_redis_restart_through_the_sweeper(
    spare_redis: tuple[str, Any], tmp_path: Path
) -> None:
    import redis
    from celery import Celery

    broker, restart_redis = spare_redis
    private = Celery(broker=broker, set_as_current=False)
    with receiver() as hook:
        channel = webhook_channel(hook.url)
        # In the outbox and in the broker's queue, as the lifecycle leaves them.
        notifications = queue_tests(channel, 50)
        # The broker URL named outright: Celery prefers CELERY_BROKER_URL from the environment.
        with private.connection_for_write(broker) as connection:
            for notification in notifications:
                private.send_task(
                    "alerts.tasks.deliver", args=[notification.pk], queue="delivery",
                    connection=connection,
                )  # fmt: skip
        assert redis.Redis.from_url(broker).llen("delivery") == 50

        restart_redis()  # its data not kept: every queued task is gone
        assert redis.Redis.from_url(broker).llen("delivery") == 0

        env = worker_env(CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=f"{broker[:-1]}1")
        install_periodic_tasks()
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "monitoring_site", "beat", "--loglevel",
             "INFO"],
            env=env, cwd=BASE_DIR, stdout=(tmp_path / "beat.log").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with celery_worker(env, queues="delivery,default", name="after-restart"):
                assert wait_until(lambda: len(arrivals(hook)) == 50, 90, interval=0.5)
        finally:
            stop(beat)

    assert set(arrivals(hook)) == {notification.webhook_id for notification in notifications}
    assert Notification.objects.filter(state="sent").count() == 50


def test_a_receiver_down_for_a_while_gets_everything_when_it_returns() -> None:
    port = free_port()
    channel = webhook_channel(f"http://127.0.0.1:{port}/hook")
    notifications = queue_tests(channel, 20)
    with celery_worker(worker_env(), queues="delivery", name="patient"):
        # Refused connections meanwhile: retried with backoff, none given up.
        assert wait_until(lambda: Notification.objects.filter(attempts__gte=2).count() == 20, 60), (
            list(Notification.objects.values_list("state", "attempts", "last_error"))
        )
        hook = Receiver(port=port).start()
        try:

            def all_arrived() -> bool:
                outbox_sweep()
                return len(arrivals(hook)) == 20

            assert wait_until(all_arrived, 60, interval=0.5)
        finally:
            hook.stop()

    assert set(arrivals(hook)) == {notification.webhook_id for notification in notifications}
    assert not Notification.objects.exclude(state="sent").exists()


def failing_check(name: str, action: Channel) -> HealthCheck:
    """A TCP check of a port nothing listens on (CRITICAL at once) that sends `action`."""
    check = HealthCheck(
        name=name, kind="tcp", config={"host": "127.0.0.1", "port": unused_port()},
        failures_to_unhealthy=1, recovery_action=action,
    )  # fmt: skip
    check.full_clean()
    check.save()
    return check


def test_recovery_actions_reach_the_bot_signed_on_a_failed_check_and_a_fired_alert() -> None:
    _, key = source_create(name="e2e-recovery-bot")
    with receiver() as bot:
        pause, pause_secret = recovery_channel(f"{bot.url}/pause", name="pause")
        close, close_secret = recovery_channel(
            f"{bot.url}/close", name="close positions", command="close_positions"
        )
        policy = Policy.objects.create(name="leverage closes", min_severity=Severity.WARNING)
        policy.rules.set([Rule.objects.get(name="Leverage")])
        policy.channels.set([close])
        failing_check("exchange-port", pause)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        with celery_worker(worker_env(), queues="ingest,delivery"):
            checks_run_due(claim_seconds=0)  # beat's health run: the check turns CRITICAL
            response = client.post(
                "/api/v1/metrics",
                json.dumps({"samples": [{"name": "leverage", "value": 4.5}]}),
                content_type="application/json",
            )
            assert response.status_code == 202
            assert wait_until(lambda: len(bot.requests) >= 2, 60)

    by_path = {request.path: request for request in bot.requests}
    paused = Webhook(pause_secret).verify(by_path["/pause"].body, by_path["/pause"].headers)
    closed = Webhook(close_secret).verify(by_path["/close"].body, by_path["/close"].headers)
    assert (paused["command"], paused["event"], paused["check"]) == (
        "pause_trading", "check", "exchange-port",
    )  # fmt: skip
    alert = Alert.objects.get(rule__name="Leverage")
    assert (closed["command"], closed["event"], closed["alert_id"], closed["source"]) == (
        "close_positions", "firing", alert.pk, "e2e-recovery-bot",
    )  # fmt: skip
    sent = Notification.objects.filter(channel__in=[pause, close])
    assert set(sent.values_list("state", flat=True)) == {"sent"}


def test_workers_retry_a_recovery_action_on_5xx_and_stop_at_a_4xx() -> None:
    with receiver() as bot, receiver(Answer(status=400, body=b"unknown command")) as refusing:
        bot.script = [Answer(status=503), Answer(status=502)]
        pause, secret = recovery_channel(f"{bot.url}/pause", name="pause")
        close, _ = recovery_channel(f"{refusing.url}/close", name="close positions")
        failing_check("exchange-port", pause)
        failing_check("order-gateway", close)
        with celery_worker(worker_env(), queues="delivery"):
            checks_run_due(claim_seconds=0)

            def settled() -> bool:
                states = set(Notification.objects.values_list("channel__name", "state"))
                return states == {("pause", "sent"), ("close positions", "failed")}

            assert wait_until(settled, 60), list(
                Notification.objects.values_list("channel__name", "state", "attempts")
            )

        assert len(refusing.requests) == 1
        assert [request.headers["webhook-id"] for request in bot.requests] == [
            Notification.objects.get(channel=pause).webhook_id
        ] * 3
        for request in bot.requests:
            Webhook(secret).verify(request.body, request.headers)
    attempts = DeliveryAttempt.objects.filter(notification__channel=pause)
    assert list(attempts.values_list("status", flat=True)) == [503, 502, 200]
    failed = Notification.objects.get(channel=close)
    assert (failed.attempts, failed.last_status) == (1, 400)
    assert "unknown command" in failed.last_error
