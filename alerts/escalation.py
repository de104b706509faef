"""Escalation: an alert left firing and unacknowledged too long reaches further channels."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .channels.registry import acts_once
from .models import Alert, AlertTransition, Channel, Notification, Policy
from .payloads import alert_payload
from .routing import acted_on, notifications_create
from .silences import is_silenced

# Bounded work per run: the next beat run takes the rest.
BATCH = 200


def alerts_escalate(*, now: datetime | None = None) -> int:
    """Escalate every alert past its policy's `escalate_after`; return how many."""
    now = now or timezone.now()
    escalated = 0
    policies = Policy.objects.filter(enabled=True, escalate_after__isnull=False).prefetch_related(
        "sources", "tags", "rules", "escalation_channels"
    )
    for policy in policies:
        assert policy.escalate_after is not None
        channels = [channel for channel in policy.escalation_channels.all() if channel.enabled]
        if not channels:
            continue
        due = Alert.objects.filter(
            state=Alert.State.FIRING,
            acknowledged_at__isnull=True,
            inhibited=False,
            fired_at__lte=now - policy.escalate_after,
            severity__gte=policy.min_severity,
        ).exclude(
            Exists(
                Notification.objects.filter(
                    alert=OuterRef("pk"), policy=policy, event=Notification.Event.ESCALATED
                )
            )
        )
        if source_ids := [source.pk for source in policy.sources.all()]:
            due = due.filter(source_id__in=source_ids)
        if rule_ids := [rule.pk for rule in policy.rules.all()]:
            due = due.filter(rule_id__in=rule_ids)
        if tag_ids := [tag.pk for tag in policy.tags.all()]:
            due = due.filter(source__tags__in=tag_ids).distinct()
        for alert_id in due.values_list("pk", flat=True)[:BATCH]:
            escalated += _alert_escalate(alert_id, policy, channels, now)
    return escalated


def _alert_escalate(alert_id: int, policy: Policy, channels: list[Channel], now: datetime) -> int:
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("rule", "source")
            .filter(pk=alert_id, state=Alert.State.FIRING, acknowledged_at__isnull=True)
            .first()
        )
        already = Notification.objects.filter(
            alert_id=alert_id, policy=policy, event=Notification.Event.ESCALATED
        ).exists()
        if alert is None or already:
            return 0  # acknowledged, resolved or escalated by another run meanwhile
        silenced = is_silenced(alert, now)
        assert policy.escalate_after is not None
        transition = AlertTransition.objects.create(
            alert=alert, at=now, kind=AlertTransition.Kind.ESCALATED, severity=alert.severity,
            value=alert.value, notify=True, silenced=silenced,
            details={
                "policy": policy.name,
                "unacknowledged_for_s": int(policy.escalate_after.total_seconds()),
                "channels": [channel.name for channel in channels],
            },
        )  # fmt: skip
        payload = alert_payload(alert, rule_name=alert.rule.name, source_name=alert.source.name)
        # A recovery action among the escalation channels acts once per alert: not again
        # if a policy already sent it when the alert fired.
        acted = acted_on(alert.pk, [c.pk for c in channels if acts_once(c.kind)])
        notifications_create(
            [
                Notification(
                    alert=alert,
                    transition=transition,
                    channel=channel,
                    policy=policy,
                    event=Notification.Event.ESCALATED,
                    severity=alert.severity,
                    payload=payload,
                )
                for channel in channels
                if alert.severity >= channel.min_severity and channel.pk not in acted
            ],
            at=now,
            silenced=silenced,
        )
    return 1
