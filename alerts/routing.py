"""Routing: which channels hear of an alert change, as outbox rows in the same transaction.

The lifecycle calls `transition_route` for every transition a person should hear about;
it writes one `Notification` per channel the enabled policies name and queues their
delivery once the transaction commits. Nothing here sends anything: a crash between
the alert change and the send loses nothing, the sweeper finds the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from core.generations import KeptCopy

from .channels.registry import acts_once
from .models import Alert, AlertTransition, Channel, Notification, Policy
from .payloads import alert_payload

logger = logging.getLogger(__name__)

Kind = AlertTransition.Kind
Event = Notification.Event

# Which notification event each notifying transition becomes.
EVENT_OF_TRANSITION: dict[str, str] = {
    Kind.FIRING: Event.FIRING,
    Kind.SEVERITY_RAISED: Event.FIRING,
    Kind.ACKNOWLEDGEMENT_EXPIRED: Event.FIRING,
    Kind.REPEAT: Event.REPEAT,
    Kind.RESOLVED: Event.RESOLVED,
    Kind.ACKNOWLEDGED: Event.ACKNOWLEDGED,
}

DELIVER_TASK = "alerts.tasks.deliver"

# Policies are read on every notifying transition; a per-process copy saves five
# queries each time. It is kept until an edit is committed (see `core.generations`),
# and the TTL bounds a change made straight in the database.
POLICIES_GENERATION = "routing-policies-generation"
POLICIES_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class RoutingPolicy:
    """A policy as routing needs it: ids only, no model instances."""

    id: int
    min_severity: int
    source_ids: frozenset[int]
    tag_ids: frozenset[int]
    rule_ids: frozenset[int]
    channel_ids: tuple[int, ...]
    notify_resolved: bool
    notify_acknowledged: bool
    repeat_seconds: dict[str, int]
    policy: Policy

    def matches(self, *, severity: int, source_id: int, tag_ids: set[int], rule_id: int) -> bool:
        """Severity at least the minimum; sources, tags and rules each empty or matching."""
        return (
            severity >= self.min_severity
            and (not self.source_ids or source_id in self.source_ids)
            and (not self.tag_ids or bool(self.tag_ids & tag_ids))
            and (not self.rule_ids or rule_id in self.rule_ids)
        )


_policies: KeptCopy[list[RoutingPolicy]] = KeptCopy(
    POLICIES_GENERATION, what="routing policies", ttl_seconds=POLICIES_TTL_SECONDS
)


def forget_routing_cache() -> None:
    """Make this process's next transition read policies afresh (tests)."""
    _policies.forget()


def routing_changed() -> None:
    """Tell every process that policies or channels changed (called on their saves)."""
    _policies.changed()


def enabled_policies() -> list[RoutingPolicy]:
    """Every enabled policy with its matchers and enabled channels."""
    return _policies.get(_enabled_policies_read)


def _enabled_policies_read() -> list[RoutingPolicy]:
    return [
        RoutingPolicy(
            id=policy.pk,
            min_severity=policy.min_severity,
            source_ids=frozenset(s.pk for s in policy.sources.all()),
            tag_ids=frozenset(t.pk for t in policy.tags.all()),
            rule_ids=frozenset(r.pk for r in policy.rules.all()),
            channel_ids=tuple(c.pk for c in policy.channels.all() if c.enabled),
            notify_resolved=policy.notify_resolved,
            notify_acknowledged=policy.notify_acknowledged,
            repeat_seconds=dict(policy.repeat_seconds),
            policy=policy,
        )
        for policy in Policy.objects.filter(enabled=True).prefetch_related(
            "sources", "tags", "rules", "channels"
        )
    ]


def channel_floors(channel_ids: Iterable[int]) -> dict[int, tuple[int, bool]]:
    """Each enabled channel's minimum severity, and whether its kind acts once per alert."""
    return {
        pk: (min_severity, acts_once(kind))
        for pk, min_severity, kind in Channel.objects.filter(
            pk__in=set(channel_ids), enabled=True
        ).values_list("pk", "min_severity", "kind")
    }


def acted_on(alert_id: int, channel_ids: Collection[int]) -> set[int]:
    """Of these channels, those that already heard of the alert.

    For kinds that act once per alert (recovery actions): the alert's row is locked
    while its transitions are recorded, so this read and the insert after it are one step.
    """
    if not channel_ids:
        return set()
    return set(
        Notification.objects.filter(alert_id=alert_id, channel_id__in=channel_ids).values_list(
            "channel_id", flat=True
        )
    )


def _repeat_too_soon(alert: Alert, route: RoutingPolicy, at: datetime) -> bool:
    """A policy may space repeats out further than the lifecycle's cadence."""
    last = Notification.objects.filter(alert=alert, policy_id=route.id).aggregate(
        last=Max("created_at")
    )["last"]
    return last is not None and at - last < route.policy.repeat_interval(alert.severity)


def transition_route(
    alert: Alert, transition: AlertTransition, *, tag_ids: set[int] | None = None
) -> list[Notification]:
    """Write the outbox rows for one notifying transition; queue them on commit.

    A silenced transition still gets its rows, `suppressed` and marked `silenced`, so
    the alert's page shows who would have heard of it.
    """
    event = EVENT_OF_TRANSITION.get(transition.kind)
    if event is None:
        return []
    policies = enabled_policies()
    if not policies:
        return []
    if tag_ids is None:
        tag_ids = set(alert.source.tags.values_list("id", flat=True))
    chosen = routes_chosen(
        policies, event=event, severity=alert.severity, source_id=alert.source_id,
        tag_ids=tag_ids, rule_id=alert.rule_id,
        repeat_too_soon=lambda route: _repeat_too_soon(alert, route, transition.at),
    )  # fmt: skip
    if not chosen:
        return []
    kept = channels_kept(
        chosen, channel_floors(chosen), event=event, severity=alert.severity,
        acted=lambda acting: acted_on(alert.pk, acting),
    )  # fmt: skip
    payload = alert_payload(alert, rule_name=alert.rule.name, source_name=alert.source.name)
    return notifications_create(
        [
            Notification(
                alert=alert,
                transition=transition,
                channel_id=channel_id,
                policy_id=route.id,
                event=event,
                severity=alert.severity,
                payload=payload,
            )
            for channel_id, route in kept.items()
        ],
        at=transition.at,
        silenced=transition.silenced,
    )


def routes_chosen(
    policies: Iterable[RoutingPolicy],
    *,
    event: str,
    severity: int,
    source_id: int,
    tag_ids: set[int],
    rule_id: int,
    repeat_too_soon: Callable[[RoutingPolicy], bool],
) -> dict[int, RoutingPolicy]:
    """channel id -> the first matching policy that sends `event` to it. Pure but for
    `repeat_too_soon` (whether a policy spaces this repeat out), so the backtest
    (`alerts.backtest`) routes as live routing does."""
    chosen: dict[int, RoutingPolicy] = {}
    for route in policies:
        if not route.matches(
            severity=severity, source_id=source_id, tag_ids=tag_ids, rule_id=rule_id
        ):
            continue
        if event == Event.RESOLVED and not route.notify_resolved:
            continue
        if event == Event.ACKNOWLEDGED and not route.notify_acknowledged:
            continue
        if event == Event.REPEAT and repeat_too_soon(route):
            continue
        for channel_id in route.channel_ids:
            chosen.setdefault(channel_id, route)
    return chosen


def channels_kept(
    chosen: dict[int, RoutingPolicy],
    floors: dict[int, tuple[int, bool]],
    *,
    event: str,
    severity: int,
    acted: Callable[[set[int]], set[int]],
) -> dict[int, RoutingPolicy]:
    """Of `chosen`, the enabled channels (`floors`: minimum severity, acts once) that take
    this notification; `acted`: which of the given acting channels heard of the alert."""
    acting = {pk for pk, (_, acts) in floors.items() if acts}
    if acting:
        # A recovery action acts when the alert fires, once: never on a repeat, a
        # resolution or an acknowledgement, nor again when it fires anew after expiry.
        skipped = acting if event != Event.FIRING else acted(acting)
        floors = {pk: floor for pk, floor in floors.items() if pk not in skipped}
    return {
        channel_id: route
        for channel_id, route in chosen.items()
        if channel_id in floors and severity >= floors[channel_id][0]
    }


def notifications_create(
    notifications: Sequence[Notification], *, at: datetime, silenced: bool = False
) -> list[Notification]:
    """Insert outbox rows (in the caller's transaction) and queue them once it commits."""
    if not notifications:
        return []
    requeue = timedelta(seconds=settings.TRADEWATCH_DELIVERY_REQUEUE_SECONDS)
    for notification in notifications:
        notification.created_at = at
        notification.next_attempt_at = at
        if silenced:
            notification.state = Notification.State.SUPPRESSED
            notification.held = Notification.Held.SILENCED
        else:
            # Queued on commit below; the sweeper queues it again only past this lease.
            notification.queued_until = at + requeue
    created = Notification.objects.bulk_create(notifications)
    if not silenced:
        ids = [notification.pk for notification in created]
        transaction.on_commit(lambda: notifications_enqueue(ids))
    return list(created)


def notifications_enqueue(ids: Sequence[int], *, countdown: float | None = None) -> None:
    """Hand delivery tasks to the broker; if it is away, the sweeper queues them later."""
    for notification_id in ids:
        try:
            current_app.send_task(DELIVER_TASK, args=[notification_id], countdown=countdown)
        except Exception:  # a broker outage must not undo the alert change
            logger.warning(
                "notification %s not queued (broker unavailable); the sweeper will queue it",
                notification_id,
                exc_info=True,
            )
            return
