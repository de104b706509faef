"""Recovery actions: signed webhooks to a local receiver, retries, and the outcome kept."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from alerts.models import Rule
from health.models import HealthCheck, RecoveryAction, RecoveryActionRun
from health.recovery import (
    recovery_action_create,
    recovery_run_attempt,
    recovery_sweep,
)
from health.rulepack import install_health_rule
from health.runner import checks_run_due
from tests.health.conftest import LocalServer, MakeCheck, unused_port

pytestmark = pytest.mark.django_db


def make_action(server: LocalServer, **fields: Any) -> tuple[RecoveryAction, str]:
    return recovery_action_create(
        name=str(fields.pop("name", "pause")),
        command=str(fields.pop("command", RecoveryAction.Command.PAUSE_TRADING)),
        url=server.url("/tradewatch/commands"),
        **fields,
    )


def test_it_stores_the_signing_secret_encrypted(http_server: LocalServer) -> None:
    action, secret = make_action(http_server)
    assert secret.startswith("whsec_")
    assert secret not in action.signing_secret_encrypted


def test_it_sends_a_signed_command_when_a_check_turns_unhealthy(
    make_check: MakeCheck, http_server: LocalServer, django_capture_on_commit_callbacks: object
) -> None:
    action, secret = make_action(http_server, parameters={"reason": "gateway down"})
    check = make_check(
        config={"host": "127.0.0.1", "port": unused_port()}, name="exchange-port",
        recovery_action=action,
    )  # fmt: skip
    with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[operator]
        checks_run_due(claim_seconds=0)
    run = RecoveryActionRun.objects.get()
    assert (run.health_check, run.state, run.attempts) == (check, "pending", 0)
    assert len(callbacks) == 1  # the first attempt is queued once the run is stored

    recovery_run_attempt(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.attempts, run.last_status) == ("sent", 1, 200)

    received = http_server.received[0]
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["command"] == "pause_trading"
    assert payload["parameters"] == {"reason": "gateway down"}
    assert payload["check"] == "exchange-port"
    assert received.headers["webhook-id"] == run.webhook_id

    # Still down at the next run: no second command for the same episode.
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=timezone.now())
    checks_run_due(claim_seconds=0)
    assert RecoveryActionRun.objects.count() == 1


def test_it_retries_a_failing_receiver_with_the_same_id_then_succeeds(
    http_server: LocalServer,
) -> None:
    action, secret = make_action(http_server)
    http_server.post_statuses = [503, 502]
    run = RecoveryActionRun.objects.create(
        action=action, trigger_key="t", reason="test", webhook_id="msg_1",
        payload={"command": "pause_trading"}, next_attempt_at=timezone.now(),
    )  # fmt: skip
    recovery_run_attempt(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.attempts, run.last_status) == ("retrying", 1, 503)
    assert run.next_attempt_at is not None
    assert run.next_attempt_at > timezone.now()
    # Not due yet: nothing is sent.
    assert recovery_run_attempt(run_id=run.pk) is None

    for _ in range(2):
        RecoveryActionRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now())
        recovery_run_attempt(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.attempts, run.last_status) == ("sent", 3, 200)
    assert {r.headers["webhook-id"] for r in http_server.received} == {"msg_1"}
    for received in http_server.received:
        Webhook(secret).verify(received.body, received.headers)


def test_it_stops_at_a_permanent_refusal_and_after_the_last_attempt(
    http_server: LocalServer,
) -> None:
    action, _ = make_action(http_server, max_attempts=2)
    http_server.post_statuses = [400, 500, 500]
    refused = RecoveryActionRun.objects.create(
        action=action, trigger_key="a", reason="r", webhook_id="msg_a",
        next_attempt_at=timezone.now(),
    )  # fmt: skip
    recovery_run_attempt(run_id=refused.pk)
    refused.refresh_from_db()
    assert (refused.state, refused.attempts) == ("failed", 1)
    assert "refused" in refused.last_error

    tired = RecoveryActionRun.objects.create(
        action=action, trigger_key="b", reason="r", webhook_id="msg_b",
        next_attempt_at=timezone.now(),
    )  # fmt: skip
    for _ in range(2):
        RecoveryActionRun.objects.filter(pk=tired.pk).update(next_attempt_at=timezone.now())
        recovery_run_attempt(run_id=tired.pk)
    tired.refresh_from_db()
    assert (tired.state, tired.attempts, tired.last_status) == ("failed", 2, 500)


def test_it_sends_an_action_when_an_alert_of_its_rules_fires(
    make_check: MakeCheck, http_server: LocalServer
) -> None:
    install_health_rule()
    rule = Rule.objects.get(name="Health check status")
    action, secret = make_action(http_server, command="custom", custom_command="flatten")
    action.rules.add(rule)
    make_check(config={"host": "127.0.0.1", "port": unused_port()}, name="feed")
    checks_run_due(claim_seconds=0)  # CRITICAL: the health alert fires

    assert recovery_sweep() == 1  # created for the alert, and due
    run = RecoveryActionRun.objects.get()
    assert run.alert is not None
    assert run.alert.rule == rule
    recovery_run_attempt(run_id=run.pk)
    payload = json.loads(http_server.received[0].body)
    assert payload["command"] == "flatten"
    assert payload["source"] == "tradewatch"
    Webhook(secret).verify(http_server.received[0].body, http_server.received[0].headers)
    # The sweep is idempotent: the same firing never sends twice.
    recovery_sweep(now=timezone.now() + timedelta(seconds=1))
    assert RecoveryActionRun.objects.count() == 1
