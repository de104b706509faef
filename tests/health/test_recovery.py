"""Recovery actions through the outbox: sent when a check turns bad or an alert fires,
signed, retried with the delivery backoff, and every attempt kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings
from standardwebhooks.webhooks import Webhook

from alerts.alert_actions import alert_acknowledge, alert_resolve
from alerts.channels.signing import signing_secret_new
from alerts.delivery import NOTIFICATION_FAILED, notification_deliver
from alerts.escalation import alerts_escalate
from alerts.models import Alert, Channel, DeliveryAttempt, Notification, Policy, Rule
from core.events import EventsAppend
from health.models import HealthCheck
from health.recovery import recovery_due, recovery_for_check
from health.rulepack import install_health_rule
from health.runner import checks_run_due
from health.scoring import Status
from metrics.models import Event
from metrics.services import SYSTEM_SOURCE_NAME
from tests.health.conftest import MakeCheck, recovery_channel, unused_port
from tests.receivers import Answer, Receiver, receiver

pytestmark = pytest.mark.django_db

WARNING = 30


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def _delivery_backoff(settings: Settings) -> None:
    settings.TRADEWATCH_DELIVERY_BACKOFF_SECONDS = 2.0
    settings.TRADEWATCH_DELIVERY_BACKOFF_MAX_SECONDS = 300.0
    settings.TRADEWATCH_DELIVERY_MAX_ATTEMPTS = 10
    settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS = 2.0


def failing_check(make_check: MakeCheck, **fields: Any) -> HealthCheck:
    """A TCP check of a port nothing listens on: CRITICAL at its first run."""
    return make_check(config={"host": "127.0.0.1", "port": unused_port()}, **fields)


def webhook_channel(hook: Receiver, name: str = "ops-hook") -> Channel:
    channel = Channel(name=name, kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/{name}"})
    channel.secrets = {"signing_secret": signing_secret_new()}
    channel.full_clean()
    channel.save()
    return channel


def deliver_due(now: datetime | None = None) -> None:
    """Deliver every pending notification that is due, as the delivery workers would."""
    for pk in Notification.objects.filter(state="pending").values_list("pk", flat=True):
        notification_deliver(notification_id=pk, now=now)


def verified(secret: str, hook: Receiver, path: str = "/commands") -> list[dict[str, Any]]:
    return [
        Webhook(secret).verify(request.body, request.headers)
        for request in hook.requests
        if request.path == path
    ]


def test_it_sends_a_signed_command_when_a_check_turns_unhealthy(
    make_check: MakeCheck, hook: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    channel, secret = recovery_channel(f"{hook.url}/commands", parameters={"minutes": 30})
    check = failing_check(make_check, name="exchange-port", recovery_action=channel)

    with django_capture_on_commit_callbacks() as callbacks:
        checks_run_due(claim_seconds=0)

    [notification] = Notification.objects.filter(channel=channel)
    assert (notification.event, notification.state) == ("check", "pending")
    assert notification.alert is None
    assert notification.severity == 50  # CRITICAL, as the check turned
    # Its delivery is queued once the check's status is stored; besides, the status change
    # is told to the live event stream.
    events = [callback for callback in callbacks if isinstance(callback, EventsAppend)]
    assert len(callbacks) - len(events) == 1
    assert "health" in [event.kind for append in events for event in append.events]

    notification_deliver(notification_id=notification.pk)

    notification.refresh_from_db()
    assert (notification.state, notification.attempts, notification.last_status) == ("sent", 1, 200)
    [body] = verified(secret, hook)
    assert (body["command"], body["parameters"], body["check"]) == (
        "pause_trading", {"minutes": 30}, "exchange-port",
    )  # fmt: skip
    assert body["reason"].startswith("exchange-port turned CRITICAL")
    assert hook.requests[0].headers["webhook-id"] == notification.webhook_id

    # Still down at the next run: no second command for the same episode.
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=timezone.now())
    checks_run_due(claim_seconds=0)
    assert Notification.objects.filter(channel=channel).count() == 1


@pytest.mark.parametrize(
    ("previous", "status", "recover_when", "due"),
    [
        (Status.HEALTHY, Status.UNHEALTHY, "unhealthy", True),
        (Status.UNKNOWN, Status.CRITICAL, "unhealthy", True),
        (Status.HEALTHY, Status.DEGRADED, "unhealthy", False),
        (Status.UNHEALTHY, Status.CRITICAL, "unhealthy", False),  # the same episode
        (Status.UNHEALTHY, Status.CRITICAL, "critical", True),
        (Status.CRITICAL, Status.HEALTHY, "degraded", False),
    ],
)
def test_it_is_due_once_the_status_crosses_what_the_check_names(
    previous: Status, status: Status, recover_when: str, due: bool
) -> None:
    assert recovery_due(previous=previous, status=status, recover_when=recover_when) is due


def test_a_disabled_action_is_not_sent(make_check: MakeCheck, hook: Receiver) -> None:
    channel, _ = recovery_channel(f"{hook.url}/commands")
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    failing_check(make_check, recovery_action=channel)

    checks_run_due(claim_seconds=0)

    assert not Notification.objects.filter(channel=channel).exists()


def test_it_acts_once_when_an_alert_of_its_policys_rules_fires(
    make_check: MakeCheck, hook: Receiver, admin_user: User
) -> None:
    install_health_rule()
    rule = Rule.objects.get(name="Health check status")
    channel, secret = recovery_channel(f"{hook.url}/commands", command="flatten_book")
    person = webhook_channel(hook)
    policy = Policy.objects.create(name="health", min_severity=WARNING)
    policy.rules.set([rule])
    policy.channels.set([channel, person])
    failing_check(make_check, name="feed")

    checks_run_due(claim_seconds=0)  # CRITICAL: the health alert fires
    deliver_due()

    alert = Alert.objects.get(rule=rule)
    [body] = verified(secret, hook)
    assert (body["command"], body["event"]) == ("flatten_book", "firing")
    assert body["alert_id"] == alert.pk
    assert body["source"] == SYSTEM_SOURCE_NAME
    # The person hears of the acknowledgement and the resolution; the bot acts only once.
    alert_acknowledge(alert_id=alert.pk, by=admin_user)
    alert_resolve(alert_id=alert.pk, by=admin_user)
    deliver_due()
    assert [n.event for n in Notification.objects.filter(channel=person).order_by("pk")] == [
        "firing", "acknowledged", "resolved",
    ]  # fmt: skip
    assert list(Notification.objects.filter(channel=channel).values_list("event", flat=True)) == [
        "firing"
    ]
    assert len(verified(secret, hook)) == 1


def test_an_escalation_acts_only_through_actions_that_have_not_acted_yet(
    make_check: MakeCheck, hook: Receiver
) -> None:
    install_health_rule()
    rule = Rule.objects.get(name="Health check status")
    pause, _ = recovery_channel(f"{hook.url}/pause", name="pause")
    close, close_secret = recovery_channel(
        f"{hook.url}/close", name="close positions", command="close_positions"
    )
    policy = Policy.objects.create(
        name="health", min_severity=WARNING, escalate_after=timedelta(minutes=5)
    )
    policy.rules.set([rule])
    policy.channels.set([pause])
    policy.escalation_channels.set([pause, close])
    failing_check(make_check)
    checks_run_due(claim_seconds=0)

    later = timezone.now() + timedelta(minutes=6)
    assert alerts_escalate(now=later) == 1
    deliver_due(now=later)

    assert list(Notification.objects.filter(channel=pause).values_list("event", flat=True)) == [
        "firing"
    ]
    [escalated] = verified(close_secret, hook, "/close")
    assert (escalated["command"], escalated["event"]) == ("close_positions", "escalated")


def test_it_retries_a_5xx_with_the_delivery_backoff_keeping_its_webhook_id(
    make_check: MakeCheck, hook: Receiver
) -> None:
    channel, secret = recovery_channel(f"{hook.url}/commands")
    hook.script = [Answer(status=503), Answer(status=502)]
    failing_check(make_check, recovery_action=channel)
    checks_run_due(claim_seconds=0)
    notification = Notification.objects.get(channel=channel)

    for attempt in (1, 2, 3):
        due = Notification.objects.get(pk=notification.pk).next_attempt_at
        notification_deliver(notification_id=notification.pk, now=due)
        if attempt < 3:
            pending = Notification.objects.get(pk=notification.pk)
            last = DeliveryAttempt.objects.filter(notification=notification).last()
            assert pending.state == "pending"
            assert last is not None
            # delivery's backoff: 2 s doubling, half of each step fixed, half jittered
            step = 2.0 * 2 ** (attempt - 1)
            wait = (pending.next_attempt_at - last.at).total_seconds()
            assert step / 2 <= wait <= step
            # Not due yet: a worker handed it early sends nothing.
            assert notification_deliver(notification_id=notification.pk).state == "skipped"

    notification.refresh_from_db()
    assert (notification.state, notification.attempts) == ("sent", 3)
    assert list(
        DeliveryAttempt.objects.filter(notification=notification).values_list("status", "ok")
    ) == [(503, False), (502, False), (200, True)]
    assert {request.headers["webhook-id"] for request in hook.requests} == {notification.webhook_id}
    assert len(verified(secret, hook)) == 3


def test_a_4xx_is_permanent_and_raises_the_delivery_problem(
    make_check: MakeCheck, hook: Receiver
) -> None:
    channel, _ = recovery_channel(f"{hook.url}/commands")
    hook.script = [Answer(status=400, body=b"unknown command")]
    failing_check(make_check, recovery_action=channel)
    checks_run_due(claim_seconds=0)
    notification = Notification.objects.get(channel=channel)

    notification_deliver(notification_id=notification.pk)

    notification.refresh_from_db()
    assert (notification.state, notification.attempts, notification.last_status) == (
        "failed", 1, 400,
    )  # fmt: skip
    assert "unknown command" in notification.last_error
    channel.refresh_from_db()
    assert channel.failed_count == 1
    assert Event.objects.filter(type=NOTIFICATION_FAILED, source__name=SYSTEM_SOURCE_NAME).exists()
    assert len(hook.requests) == 1


def test_a_rate_limit_never_holds_a_command_back_for_a_digest(
    make_check: MakeCheck, hook: Receiver
) -> None:
    channel, secret = recovery_channel(f"{hook.url}/commands")
    Channel.objects.filter(pk=channel.pk).update(rate_limit=1)
    check = failing_check(make_check, recovery_action=channel)
    check.refresh_from_db()
    for _ in range(3):
        recovery_for_check(
            check=check, status=Status.CRITICAL, previous=Status.HEALTHY, now=timezone.now()
        )

    deliver_due()

    assert set(Notification.objects.values_list("event", "state")) == {("check", "sent")}
    assert len(verified(secret, hook)) == 3


def test_a_failing_message_never_falls_back_to_a_recovery_action(
    make_check: MakeCheck, hook: Receiver
) -> None:
    install_health_rule()
    action, _ = recovery_channel(f"{hook.url}/commands")
    person = webhook_channel(hook)
    policy = Policy.objects.create(name="health", min_severity=WARNING, fallback_channel=action)
    policy.channels.set([person])
    hook.script = [Answer(status=400)]
    failing_check(make_check)
    checks_run_due(claim_seconds=0)

    deliver_due()

    assert Notification.objects.get(channel=person).state == "failed"
    assert not Notification.objects.filter(channel=action).exists()
