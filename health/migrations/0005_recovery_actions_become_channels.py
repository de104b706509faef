"""Recovery actions become channels of kind `recovery`, delivered through the outbox.

Every recovery action becomes a channel (same name when free, its URL, command,
parameters and source in `config`, its signing secret in `secrets`); an action's rules
become a policy routing those rules' alerts to that channel; checks point at the
channel; each run becomes a notification (same `webhook-id`, state, attempts and last
answer, which is all the old record kept of its attempts) so pending runs are sent by
the outbox and sent ones stay in the history. The audit history of each action becomes
its channel's, and audit rows of checks name the channel. Going back forgets which
check sent which action (the channels and notifications stay).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

DEBUG, WARNING, ERROR, CRITICAL = 10, 30, 40, 50
SEVERITY_OF_STATUS = {"DEGRADED": WARNING, "UNHEALTHY": ERROR, "CRITICAL": CRITICAL}
SEVERITY_LABEL = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL", 60: "EMERGENCY"}
STATE = {"pending": "pending", "retrying": "pending", "sent": "sent", "failed": "failed"}
AUDIT_LABEL = {"secret_changed": "secrets_changed"}
# The check audit trigger installed by 0004: the checks' pointer changes what it points
# into, not what anyone configured, so it is not recorded as an edit.
CHECK_UPDATE_TRIGGER = "pgtrigger_update_update_257e7"
UNREADABLE = (
    "The recovery action's signing secret could not be decrypted when it became a "
    "channel: set a new one, then enable the channel."
)


def free_name(model: Any, alias: str, wanted: str) -> str:
    """`wanted`, or `wanted (recovery)`, `wanted (recovery 2)`, ... whichever is free."""
    candidates = [wanted, f"{wanted} (recovery)"] + [f"{wanted} (recovery {n})" for n in range(2, 1000)]
    for candidate in candidates:
        name = candidate[:100]
        if not model.objects.using(alias).filter(name=name).exists():
            return name
    raise RuntimeError(f"No free name for {wanted!r}")


def command_config(*, url: str, command: str, custom: str, parameters: Any, source: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "url": url,
        "command": custom if command == "custom" else command,
        "parameters": parameters if isinstance(parameters, dict) else {},
    }
    if source:
        config["source"] = source
    return config


def channel_for(apps: Any, alias: str, action: Any) -> Any:
    from alerts.crypto import SecretUnreadable, decrypt_text, encrypt_text

    Channel = apps.get_model("alerts", "Channel")
    try:
        secret = decrypt_text(action.signing_secret_encrypted)
    except SecretUnreadable:
        secret = ""
    return Channel.objects.using(alias).create(
        name=free_name(Channel, alias, action.name),
        kind="recovery",
        enabled=action.enabled and bool(secret),
        config=command_config(
            url=action.url, command=action.command, custom=action.custom_command,
            parameters=action.parameters, source=action.source.name if action.source else None,
        ),
        secrets_encrypted=encrypt_text(json.dumps({"signing_secret": secret})) if secret else "",
        # Every alert the policy routes acts, whatever its severity, as the action did.
        min_severity=DEBUG,
        rate_limit=0,
        disabled_reason="" if secret else UNREADABLE,
        disabled_at=None if secret else timezone.now(),
    )  # fmt: skip


@contextmanager
def check_edits_unrecorded(schema_editor: Any) -> Iterator[None]:
    if schema_editor.connection.vendor != "postgresql":
        yield
        return
    schema_editor.execute(f'ALTER TABLE "health_healthcheck" DISABLE TRIGGER "{CHECK_UPDATE_TRIGGER}"')
    try:
        yield
    finally:
        schema_editor.execute(f'ALTER TABLE "health_healthcheck" ENABLE TRIGGER "{CHECK_UPDATE_TRIGGER}"')


def webhook_uid(webhook_id: str) -> uuid.UUID:
    """The run's `webhook-id` kept, so a resend is recognised as the same message."""
    try:
        return uuid.UUID(hex=webhook_id.removeprefix("msg_"))
    except ValueError:
        return uuid.uuid4()


def status_in(reason: str) -> str:
    # The run kept the check's new status only in its reason: "<check> turned CRITICAL: ..."
    for status in ("CRITICAL", "UNHEALTHY", "DEGRADED"):
        if f" turned {status}" in reason:
            return status
    return "UNHEALTHY"


def notification_for(run: Any, channel: Any, policy_id: int | None) -> Any:
    """The outbox row a run becomes, and what the recovery channel reads from it."""
    old = run.payload if isinstance(run.payload, dict) else {}
    from_alert = run.trigger_key.startswith("alert:")
    if from_alert:
        alert = run.alert
        severity = alert.severity if alert is not None else ERROR
        payload = {
            "id": run.alert_id,
            "rule": alert.rule.name if alert is not None else None,
            "source": old.get("source"),
            "severity": SEVERITY_LABEL.get(severity, "ERROR"),
            "status": alert.state if alert is not None else None,
            "message": alert.message if alert is not None else run.reason,
            "reason": run.reason,
        }
    else:
        status = status_in(run.reason)
        severity = SEVERITY_OF_STATUS[status]
        check = run.health_check.name if run.health_check is not None else old.get("check")
        payload = {
            "check": check, "status": status, "source": old.get("source"),
            "severity": SEVERITY_LABEL[severity], "reason": run.reason,
        }  # fmt: skip
    state = STATE.get(run.state, "failed")
    return {
        "uid": webhook_uid(run.webhook_id),
        "alert_id": run.alert_id if from_alert else None,
        "channel_id": channel.pk,
        "policy_id": policy_id if from_alert else None,
        "event": "firing" if from_alert else "check",
        "severity": severity,
        "payload": payload,
        "state": state,
        "attempts": min(run.attempts, 32767),
        "next_attempt_at": run.next_attempt_at or run.created_at,
        "last_status": run.last_status,
        "last_error": run.last_error,
        "created_at": run.created_at,
        "sent_at": run.finished_at if state == "sent" else None,
    }


def runs_to_notifications(apps: Any, alias: str, channel_of: dict[int, Any], policy_of: dict[int, int]) -> None:
    Run = apps.get_model("health", "RecoveryActionRun")
    Notification = apps.get_model("alerts", "Notification")
    DeliveryAttempt = apps.get_model("alerts", "DeliveryAttempt")
    Channel = apps.get_model("alerts", "Channel")
    runs = Run.objects.using(alias).select_related("alert__rule", "health_check").order_by("pk")
    for run in runs.iterator():
        channel = channel_of[run.action_id]
        notification = Notification.objects.using(alias).create(
            **notification_for(run, channel, policy_of.get(run.action_id))
        )
        if run.attempts:
            # The old record kept only the last attempt's outcome (and its time once finished).
            DeliveryAttempt.objects.using(alias).create(
                notification=notification, at=run.finished_at or run.created_at,
                ok=run.state == "sent", status=run.last_status, duration_ms=run.duration_ms or 0.0,
                answer=run.answer[:500], error=run.last_error[:1000],
            )  # fmt: skip
    for channel in channel_of.values():
        sent = Notification.objects.using(alias).filter(channel=channel, state="sent")
        failed = Notification.objects.using(alias).filter(channel=channel, state="failed")
        last_failed = failed.order_by("-created_at", "-pk").first()
        Channel.objects.using(alias).filter(pk=channel.pk).update(
            sent_count=sent.count(), failed_count=failed.count(),
            last_success_at=sent.aggregate(last=models.Max("sent_at"))["last"],
            last_error=last_failed.last_error if last_failed else "",
            last_error_at=last_failed.created_at if last_failed else None,
        )  # fmt: skip


def audit_follows(apps: Any, alias: str, channel_of: dict[int, Any]) -> None:
    """Each action's history becomes its channel's; check history names the channels."""
    ActionEvent = apps.get_model("audit", "RecoveryActionEvent")
    ChannelEvent = apps.get_model("audit", "ChannelEvent")
    CheckEvent = apps.get_model("audit", "HealthCheckEvent")
    Source = apps.get_model("metrics", "Source")
    pointing = list(
        CheckEvent.objects.using(alias)
        .filter(recovery_action_id__isnull=False)
        .values_list("pgh_id", "recovery_action_id")
    )
    for pgh_id, action_id in pointing:
        channel = channel_of.get(action_id)
        # An action deleted before now has no channel: the snapshot names none.
        CheckEvent.objects.using(alias).filter(pgh_id=pgh_id).update(
            recovery_action_id=channel.pk if channel is not None else None
        )
    sources = dict(Source.objects.using(alias).values_list("pk", "name"))
    events = ActionEvent.objects.using(alias).filter(pgh_obj_id__in=list(channel_of))
    for event in events.order_by("pgh_id"):
        channel = channel_of[event.pgh_obj_id]
        copied = ChannelEvent.objects.using(alias).create(
            pgh_label=AUDIT_LABEL.get(event.pgh_label, event.pgh_label),
            pgh_context_id=event.pgh_context_id, pgh_obj_id=channel.pk, id=channel.pk,
            name=event.name, kind="recovery", enabled=event.enabled,
            config=command_config(
                url=event.url, command=event.command, custom=event.custom_command,
                parameters=event.parameters, source=sources.get(event.source_id),
            ),
            min_severity=DEBUG, rate_limit=0, rate_window=channel.rate_window,
            disabled_reason="", disabled_at=None, created_at=event.created_at,
        )  # fmt: skip
        # Both timestamps are set on insert; the history keeps the action's own.
        ChannelEvent.objects.using(alias).filter(pgh_id=copied.pgh_id).update(
            pgh_created_at=event.pgh_created_at, created_at=event.created_at
        )


def recovery_actions_to_channels(apps: Any, schema_editor: Any) -> None:
    alias = schema_editor.connection.alias
    RecoveryAction = apps.get_model("health", "RecoveryAction")
    HealthCheck = apps.get_model("health", "HealthCheck")
    Policy = apps.get_model("alerts", "Policy")
    channel_of: dict[int, Any] = {}
    policy_of: dict[int, int] = {}
    for action in RecoveryAction.objects.using(alias).select_related("source").order_by("pk"):
        channel = channel_for(apps, alias, action)
        channel_of[action.pk] = channel
        rule_ids = list(action.rules.values_list("pk", flat=True))
        if rule_ids:
            # "Also send it when an alert of one of these rules fires", as routing says it.
            policy = Policy.objects.using(alias).create(
                name=free_name(Policy, alias, f"Recovery: {action.name}"),
                min_severity=DEBUG, notify_resolved=False, notify_acknowledged=False,
            )  # fmt: skip
            policy.rules.set(rule_ids)
            policy.channels.set([channel])
            policy_of[action.pk] = policy.pk
    # Read every pointer before rewriting any: an action's id may be another's channel id.
    pointing = list(
        HealthCheck.objects.using(alias)
        .filter(recovery_action_id__isnull=False)
        .values_list("pk", "recovery_action_id")
    )
    with check_edits_unrecorded(schema_editor):
        for check_id, action_id in pointing:
            HealthCheck.objects.using(alias).filter(pk=check_id).update(
                recovery_action_id=channel_of[action_id].pk
            )
    runs_to_notifications(apps, alias, channel_of, policy_of)
    audit_follows(apps, alias, channel_of)
    retire_recovery_sweep(apps, alias)


def retire_recovery_sweep(apps: Any, alias: str) -> None:
    """The beat entry of the old sweep goes: the outbox sweeper sends what is due."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.using(alias).filter(task="health.tasks.run_recovery_sweep").delete()[0]:
        # A running beat reloads its schedule when this changes.
        PeriodicTasks.objects.using(alias).update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )


def checks_forget_channels(apps: Any, schema_editor: Any) -> None:
    HealthCheck = apps.get_model("health", "HealthCheck")
    with check_edits_unrecorded(schema_editor):
        HealthCheck.objects.using(schema_editor.connection.alias).update(recovery_action_id=None)


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0004_operator_permissions_audit_triggers"),
        ("alerts", "0006_channel_kind_recovery"),
        ("audit", "0002_link_triggers"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        # While checks are moved from actions to channels, their pointer holds either.
        migrations.AlterField(
            model_name="healthcheck",
            name="recovery_action",
            field=models.ForeignKey(
                blank=True, db_constraint=False, null=True,
                on_delete=django.db.models.deletion.SET_NULL, related_name="checks",
                to="health.recoveryaction",
            ),  # fmt: skip
        ),
        migrations.RunPython(recovery_actions_to_channels, checks_forget_channels),
        migrations.AlterField(
            model_name="healthcheck",
            name="recovery_action",
            field=models.ForeignKey(
                blank=True,
                help_text="A recovery action (a channel of kind recovery), sent when the "
                "check's status turns as bad as `recover when`.",
                limit_choices_to={"kind": "recovery"},
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="recovery_checks",
                to="alerts.channel",
            ),
        ),
    ]
