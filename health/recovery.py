"""Recovery actions: a signed webhook telling a trading system what to do, with retries.

A run is created once per (action, trigger): a check whose status turned bad (one run
per such change) or an alert of one of the action's rules that fired (one run per
alert). It is sent after the transaction that created it commits, signed as outbound
webhooks are (Standard Webhooks, the action's own `whsec_` secret, one `webhook-id`
for every attempt), through the same SSRF-guarded HTTP transport as the channels.
A failure that may pass (5xx, timeout, 429) is retried with exponential backoff up to
the action's `max_attempts`; a permanent one (4xx, a refused destination) stops. The
outcome of every attempt is kept on the run. Beat sweeps runs whose next attempt is
due, so a lost task message only delays a retry.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts.channels import http
from alerts.channels.base import DeliveryResult
from alerts.channels.signing import signed_headers, signing_secret_new
from alerts.crypto import decrypt_text, encrypt_text
from alerts.models import Alert, AlertTransition

from .models import HealthCheck, RecoveryAction, RecoveryActionRun
from .scoring import Status

logger = logging.getLogger(__name__)

# While one attempt is in flight, the run is held this long against a second sender.
ATTEMPT_LEASE: Final = timedelta(seconds=60)
BACKOFF_BASE_SECONDS: Final = 5.0
BACKOFF_CAP_SECONDS: Final = 300.0
# How far back the sweep looks for alerts that fired (it runs every few seconds).
ALERT_LOOKBACK: Final = timedelta(minutes=10)
_RECOVER_LEVEL: Final = {
    HealthCheck.RecoverWhen.DEGRADED: Status.DEGRADED.level,
    HealthCheck.RecoverWhen.UNHEALTHY: Status.UNHEALTHY.level,
    HealthCheck.RecoverWhen.CRITICAL: Status.CRITICAL.level,
}


def recovery_action_create(
    *, name: str, command: str, url: str, secret: str | None = None, **fields: Any
) -> tuple[RecoveryAction, str]:
    """Create an action with a signing secret (a new one unless given); return both."""
    secret = secret or signing_secret_new()
    action = RecoveryAction(name=name, command=command, url=url, **fields)
    action.signing_secret_encrypted = encrypt_text(secret)
    action.full_clean()
    action.save()
    return action, secret


def recovery_action_secret(action: RecoveryAction) -> str:
    """The action's signing secret, decrypted (to configure the trading system)."""
    return decrypt_text(action.signing_secret_encrypted)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Wait before the next attempt: 5 s doubling to 5 min, jittered; at least Retry-After."""
    base = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    wait = base * random.uniform(0.8, 1.2)  # noqa: S311 (spreading retries, not secrecy)
    return max(wait, retry_after or 0.0)


def recovery_trigger(
    *,
    action: RecoveryAction,
    trigger_key: str,
    reason: str,
    now: datetime,
    health_check: HealthCheck | None = None,
    alert: Alert | None = None,
) -> RecoveryActionRun | None:
    """Create the run of `action` for this trigger (once) and send it after commit."""
    if not action.enabled:
        return None
    source = action.source or (health_check.source if health_check else None)
    source = source or (alert.source if alert else None)
    payload = {
        "type": "recovery_action",
        "action": action.name,
        "command": action.command_name,
        "parameters": action.parameters,
        "source": source.name if source else None,
        "reason": reason,
        "check": health_check.name if health_check else None,
        "alert_id": alert.pk if alert else None,
        "requested_at": now.isoformat(),
    }
    with transaction.atomic():
        run, created = RecoveryActionRun.objects.get_or_create(
            action=action,
            trigger_key=trigger_key[:200],
            defaults={
                "reason": reason[:500], "health_check": health_check, "alert": alert,
                "webhook_id": f"msg_{uuid.uuid4().hex}", "payload": payload,
                "next_attempt_at": now, "created_at": now,
            },
        )  # fmt: skip
    if created:
        transaction.on_commit(lambda: _enqueue(run.pk))
        return run
    return None


def _enqueue(run_id: int) -> None:
    from .tasks import run_recovery_action

    try:
        run_recovery_action.delay(run_id)
    except Exception:  # the broker is away: the beat sweep sends it later
        logger.warning("recovery run %s not queued; the sweep will send it", run_id)


def recovery_for_check(
    *, check: HealthCheck, status: Status, previous: Status, now: datetime
) -> None:
    """Trigger the check's recovery action when its status just became bad enough."""
    action = check.recovery_action
    if action is None:
        return
    level = _RECOVER_LEVEL[HealthCheck.RecoverWhen(check.recover_when)]
    # Once per crossing: unhealthy turning critical is the same episode.
    if not previous.level < level <= status.level:
        return
    recovery_trigger(
        action=action,
        trigger_key=f"check:{check.pk}:{now.isoformat()}",
        reason=f"{check.name} turned {status.label}: {check.last_summary}",
        now=now,
        health_check=check,
    )


def recovery_for_alerts(*, now: datetime | None = None) -> int:
    """Trigger actions for alerts of their rules that fired recently; return how many."""
    now = now or timezone.now()
    created = 0
    actions = RecoveryAction.objects.filter(enabled=True, rules__isnull=False).distinct()
    for action in actions.prefetch_related("rules"):
        fired = (
            AlertTransition.objects.filter(
                kind=AlertTransition.Kind.FIRING,
                at__gte=now - ALERT_LOOKBACK,
                alert__rule__in=action.rules.all(),
            )
            .exclude(alert_id__in=action.runs.filter(alert__isnull=False).values("alert_id"))
            .select_related("alert__source", "alert__rule")
        )
        for transition in fired:
            alert = transition.alert
            run = recovery_trigger(
                action=action, trigger_key=f"alert:{alert.pk}",
                reason=f"{alert.rule.name} fired on {alert.source.name}: {alert.message}",
                now=now, alert=alert,
            )  # fmt: skip
            created += run is not None
    return created


def recovery_runs_due(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Runs waiting for an attempt (a retry due, or a first send whose task was lost)."""
    now = now or timezone.now()
    return list(
        RecoveryActionRun.objects.filter(
            state__in=[RecoveryActionRun.State.PENDING, RecoveryActionRun.State.RETRYING],
            next_attempt_at__lte=now,
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )


def recovery_sweep(*, now: datetime | None = None) -> int:
    """Beat's part: actions for fired alerts, then queue every run that is due."""
    now = now or timezone.now()
    recovery_for_alerts(now=now)
    due = recovery_runs_due(now=now)
    for run_id in due:
        _enqueue(run_id)
    return len(due)


def recovery_run_attempt(*, run_id: int, now: datetime | None = None) -> RecoveryActionRun | None:
    """Send one attempt of a run if it is due and nobody else is sending it; record it."""
    now = now or timezone.now()
    # Claim by conditional update: of two workers holding the same run, one sends.
    claimed = RecoveryActionRun.objects.filter(
        pk=run_id,
        state__in=[RecoveryActionRun.State.PENDING, RecoveryActionRun.State.RETRYING],
        next_attempt_at__lte=now,
    ).update(next_attempt_at=now + ATTEMPT_LEASE, attempts=F("attempts") + 1)
    if not claimed:
        return None
    run = RecoveryActionRun.objects.select_related("action").get(pk=run_id)
    action = run.action
    body = orjson.dumps(run.payload)
    try:
        headers = signed_headers(
            secrets_in_use=[recovery_action_secret(action)], webhook_id=run.webhook_id, body=body
        )
    except ValueError as exc:  # an unreadable secret: retrying cannot help
        result = DeliveryResult(ok=False, error=str(exc), permanent=True)
    else:
        headers["Content-Type"] = "application/json"
        result = http.post(action.url, content=body, headers=headers)
    run.last_status = result.status
    run.last_error = result.error[:1000]
    run.answer = result.answer[:500]
    run.duration_ms = round(result.duration_ms, 2)
    if result.ok:
        run.state, run.finished_at, run.next_attempt_at = run.State.SENT, timezone.now(), None
    elif result.permanent or run.attempts >= action.max_attempts:
        run.state, run.finished_at, run.next_attempt_at = run.State.FAILED, timezone.now(), None
    else:
        run.state = run.State.RETRYING
        run.next_attempt_at = timezone.now() + timedelta(
            seconds=backoff_seconds(run.attempts, result.retry_after)
        )
    run.save(
        update_fields=["last_status", "last_error", "answer", "duration_ms", "state",
                       "finished_at", "next_attempt_at"]
    )  # fmt: skip
    return run
