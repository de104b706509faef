"""The upgrade that makes recovery actions channels keeps every action, trigger and run.

The schema is taken back to the migrations before it, filled as the old code left it
(actions, a rule trigger, a check trigger, runs pending, sent and failed, audit rows),
and migrated forward.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from pytest_django.fixtures import Settings
from standardwebhooks.webhooks import Webhook

from alerts.channels.signing import signing_secret_new
from alerts.crypto import encrypt_text
from alerts.delivery import notification_deliver
from alerts.models import Channel, DeliveryAttempt, Notification, Policy
from audit.models import ChannelEvent, HealthCheckEvent
from health.models import HealthCheck
from tests.receivers import Receiver, receiver

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("health", "0004_operator_permissions_audit_triggers"),
    ("alerts", "0005_alert_announced_and_kept_resolved"),
    ("audit", "0002_link_triggers"),
    ("django_celery_beat", "0019_alter_periodictasks_options"),  # applied already
]
AFTER = [
    ("health", "0006_recovery_action_runs_removed"),
    ("alerts", "0006_channel_kind_recovery"),
    ("audit", "0003_recovery_actions_become_channels"),
]


def migrate(targets: list[tuple[str, str]]) -> Any:
    """Take the schema to `targets`; return the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_today() -> None:
    """Every app's newest migration: going back to BEFORE also unapplied those that
    depend on what it undid (configuration's), which AFTER does not name."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def before_upgrade() -> Iterator[Any]:
    apps = migrate(BEFORE)
    try:
        yield apps
    finally:
        migrate_to_today()  # whatever happened, later tests find today's schema


@pytest.fixture
def bot() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def old_rows(apps: Any, bot: Receiver, secret: str) -> dict[str, Any]:
    """Actions, triggers and runs as the old recovery code wrote them."""
    Source = apps.get_model("metrics", "Source")
    Rule = apps.get_model("alerts", "Rule")
    Alert = apps.get_model("alerts", "Alert")
    Channel = apps.get_model("alerts", "Channel")
    Action = apps.get_model("health", "RecoveryAction")
    Run = apps.get_model("health", "RecoveryActionRun")
    Check = apps.get_model("health", "HealthCheck")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    Interval = apps.get_model("django_celery_beat", "IntervalSchedule")
    now = timezone.now()
    bot_source = Source.objects.create(name="alpha-bot")
    rule = Rule.objects.create(name="Drawdown emergency", metric="drawdown_pct")
    # A channel already holds the action's name: the action's channel takes another.
    Channel.objects.create(name="flatten", kind="console")
    pause = Action.objects.create(
        name="pause", command="pause_trading", url=f"{bot.url}/commands",
        parameters={"minutes": 30}, source=bot_source, max_attempts=3,
        signing_secret_encrypted=encrypt_text(secret),
    )  # fmt: skip
    flatten = Action.objects.create(
        name="flatten", command="custom", custom_command="flatten_book",
        url=f"{bot.url}/flatten", signing_secret_encrypted=encrypt_text(signing_secret_new()),
    )  # fmt: skip
    flatten.rules.set([rule])
    Action.objects.filter(pk=pause.pk).update(enabled=True, parameters={"minutes": 45})
    check = Check.objects.create(name="exchange-port", kind="tcp", recovery_action=pause)
    alert = Alert.objects.create(
        fingerprint="f1", rule=rule, source=bot_source, state="firing", severity=60,
        message="Drawdown 22 %", first_seen=now, last_seen=now, fired_at=now,
    )  # fmt: skip
    waiting_id = f"msg_{uuid.uuid4().hex}"
    waiting = Run.objects.create(
        action=pause, trigger_key=f"check:{check.pk}:{now.isoformat()}",
        reason="exchange-port turned CRITICAL: connection refused", health_check=check,
        webhook_id=waiting_id, payload={"source": "alpha-bot", "check": "exchange-port"},
        state="retrying", attempts=1, next_attempt_at=now, last_status=503,
        last_error="The endpoint failed (503).", answer="busy", duration_ms=12.5, created_at=now,
    )  # fmt: skip
    sent = Run.objects.create(
        action=flatten, trigger_key=f"alert:{alert.pk}",
        reason="Drawdown emergency fired on alpha-bot: Drawdown 22 %", alert=alert,
        webhook_id=f"msg_{uuid.uuid4().hex}", payload={"source": "alpha-bot"}, state="sent",
        attempts=2, last_status=200, answer="ok", duration_ms=8.0,
        created_at=now - timedelta(minutes=5), finished_at=now - timedelta(minutes=4),
    )  # fmt: skip
    interval = Interval.objects.create(every=10, period="seconds")
    PeriodicTask.objects.create(
        name="Recovery actions", task="health.tasks.run_recovery_sweep", interval=interval
    )
    return {"check": check.pk, "alert": alert.pk, "rule": rule.pk, "waiting_id": waiting_id,
            "waiting": waiting.pk, "sent": sent.pk}  # fmt: skip


def test_it_moves_actions_triggers_runs_and_history_into_the_outbox(
    before_upgrade: Any, bot: Receiver, settings: Settings
) -> None:
    secret = signing_secret_new()
    old = old_rows(before_upgrade, bot, secret)
    check_events_before = HealthCheckEvent.objects.count()

    migrate(AFTER)

    pause = Channel.objects.get(name="pause")
    flatten = Channel.objects.get(name="flatten (recovery)")
    assert (pause.kind, pause.enabled, pause.rate_limit) == ("recovery", True, 0)
    assert pause.config == {
        "url": f"{bot.url}/commands", "command": "pause_trading", "parameters": {"minutes": 45},
        "source": "alpha-bot",
    }  # fmt: skip
    assert pause.secrets == {"signing_secret": secret}
    assert flatten.config["command"] == "flatten_book"
    pause.full_clean()  # a valid channel, as if made in the admin
    # The check still sends the same action; the rule's alerts reach it through a policy.
    assert HealthCheck.objects.get(pk=old["check"]).recovery_action == pause
    # Only the fields this schema has: today's model has later ones (the operations digest).
    policy = Policy.objects.only("min_severity", "notify_resolved", "notify_acknowledged").get(
        channels=flatten
    )
    assert list(policy.rules.values_list("pk", flat=True)) == [old["rule"]]
    assert (policy.min_severity, policy.notify_resolved, policy.notify_acknowledged) == (
        10, False, False,
    )  # fmt: skip

    # Runs are notifications: the pending one keeps its webhook-id and is sent as before.
    waiting = Notification.objects.get(channel=pause)
    assert (waiting.event, waiting.state, waiting.attempts, waiting.last_status) == (
        "check", "pending", 1, 503,
    )  # fmt: skip
    assert waiting.webhook_id == old["waiting_id"]
    done = Notification.objects.get(channel=flatten)
    assert (done.event, done.state, done.alert_id, done.policy_id) == (
        "firing", "sent", old["alert"], policy.pk,
    )  # fmt: skip
    assert list(DeliveryAttempt.objects.filter(notification=done).values_list("status", "ok")) == [
        (200, True)
    ]
    flatten.refresh_from_db()
    assert flatten.sent_count == 1

    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    notification_deliver(notification_id=waiting.pk)
    [request] = bot.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == old["waiting_id"]
    assert (body["command"], body["parameters"], body["source"], body["check"]) == (
        "pause_trading", {"minutes": 45}, "alpha-bot", "exchange-port",
    )  # fmt: skip
    assert body["reason"] == "exchange-port turned CRITICAL: connection refused"

    # The actions' audit history is their channels' now; the checks' names the channels.
    history = list(ChannelEvent.objects.filter(pgh_obj=pause).order_by("pgh_created_at", "pgh_id"))
    assert [event.pgh_label for event in history] == ["insert", "update", "insert"]
    assert [event.config["parameters"] for event in history[:2]] == [
        {"minutes": 30}, {"minutes": 45},
    ]  # fmt: skip
    assert history[0].pgh_created_at < history[-1].pgh_created_at
    assert HealthCheckEvent.objects.count() == check_events_before  # nobody edited a check
    assert set(HealthCheckEvent.objects.values_list("recovery_action_id", flat=True)) == {pause.pk}

    from django_celery_beat.models import PeriodicTask

    assert not PeriodicTask.objects.filter(task="health.tasks.run_recovery_sweep").exists()
