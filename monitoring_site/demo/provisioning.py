"""The demo's things in the database: its sources and keys, its console channel and
policy, and their removal (`tradewatch demo --clean`).

A demo source is one named `demo-...` *and* tagged `demo`: a source of someone's own
that merely carries the tag is never touched. The channel and the policy are both
named `demo` (the channel a console one). Sources and keys are made by the product's
own service (`metrics.services.source_create`); nothing the systems report is written
here: that goes through the HTTP API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet

from alerts.models import Alert, Channel, Notification, Policy, Rule, Severity, Silence
from metrics.authentication import keys_changed
from metrics.models import Event, MetricSample, Source, SourceAPIKey, Tag, Trade
from metrics.services import source_create

from .scenario import System

DEMO_TAG = "demo"
DEMO_PREFIX = "demo-"
CHANNEL_NAME = "demo"
POLICY_NAME = "demo"


def demo_sources() -> QuerySet[Source]:
    """Sources named `demo-...` and tagged `demo`."""
    return Source.objects.filter(name__startswith=DEMO_PREFIX, tags__name=DEMO_TAG).distinct()


def demo_channel() -> Channel | None:
    return Channel.objects.filter(name=CHANNEL_NAME, kind=Channel.Kind.CONSOLE).first()


@dataclass
class Removed:
    """What `demo_clean` deleted, counted."""

    sources: list[str] = field(default_factory=list)
    keys: int = 0
    samples: int = 0
    trades: int = 0
    events: int = 0
    alerts: int = 0
    notifications: int = 0
    channel: bool = False
    policy: bool = False
    tag: bool = False

    def describe(self) -> str:
        """`6 sources (demo-a, ...), 6 API keys, 1,520 samples, ...` or `nothing`."""
        parts = []
        if self.sources:
            parts.append(f"{len(self.sources)} source(s) ({', '.join(self.sources)})")
        for count, what in (
            (self.keys, "API key(s)"),
            (self.samples, "metric sample(s)"),
            (self.trades, "trade(s)"),
            (self.events, "event(s)"),
            (self.alerts, "alert(s)"),
            (self.notifications, "notification(s)"),
        ):
            if count:
                parts.append(f"{count:,} {what}")
        if self.channel:
            parts.append(f"the console channel {CHANNEL_NAME!r}")
        if self.policy:
            parts.append(f"the policy {POLICY_NAME!r}")
        if self.tag:
            parts.append(f"the tag {DEMO_TAG!r}")
        return ", ".join(parts) if parts else "nothing (no demo found)"


@transaction.atomic
def demo_clean(*, channel_and_policy: bool = True) -> Removed:
    """Delete the demo sources with everything of theirs (keys, samples, trades, events,
    heartbeats, derived state, alerts with their timelines and notifications) and, with
    `channel_and_policy`, the demo channel (with its notifications) and policy; the tag
    `demo` too once nothing else uses it. Nothing else is touched."""
    sources = list(demo_sources().order_by("name"))
    ids = [source.pk for source in sources]
    channel = demo_channel() if channel_and_policy else None
    policy = Policy.objects.filter(name=POLICY_NAME).first() if channel_and_policy else None
    notifications = Notification.objects.filter(alert__source_id__in=ids)
    if channel is not None:
        notifications = Notification.objects.filter(
            Q(alert__source_id__in=ids) | Q(channel=channel)
        )
    removed = Removed(
        sources=[source.name for source in sources],
        keys=SourceAPIKey.objects.filter(source_id__in=ids).count(),
        samples=MetricSample.objects.filter(series__source_id__in=ids).count(),
        trades=Trade.objects.filter(source_id__in=ids).count(),
        events=Event.objects.filter(source_id__in=ids).count(),
        alerts=Alert.objects.filter(source_id__in=ids).count(),
        notifications=notifications.count(),
        channel=channel is not None,
        policy=policy is not None,
    )
    # Samples first, in one statement: the cascade from the sources would read them all.
    MetricSample.objects.filter(series__source_id__in=ids).delete()
    Source.objects.filter(pk__in=ids).delete()
    if policy is not None:
        policy.delete()
    if channel is not None:
        channel.delete()
    if channel_and_policy:
        removed.tag = _tag_drop_if_unused()
    if removed.keys:
        # Every web process refuses the deleted keys from its next request.
        keys_changed()
    return removed


def _tag_drop_if_unused() -> bool:
    tag = Tag.objects.filter(name=DEMO_TAG).first()
    if tag is None:
        return False
    in_use = (
        tag.sources.exists()
        or Rule.objects.filter(tag=tag).exists()
        or Policy.tags.through.objects.filter(tag=tag).exists()
        or Silence.tags.through.objects.filter(tag=tag).exists()
    )
    if in_use:
        return False
    tag.delete()
    return True


@dataclass(frozen=True)
class Provisioned:
    """The demo's sources with their new keys, and what was made or found."""

    keys: dict[str, str]
    replaced: Removed
    channel_created: bool
    policy_created: bool


@transaction.atomic
def demo_provision(systems: Sequence[System]) -> Provisioned:
    """Make a fresh source (with a new API key) for each system, replacing an earlier
    run's, and make sure the console channel and the policy routing the demo sources'
    alerts to it exist."""
    replaced = demo_clean(channel_and_policy=False)
    keys = {}
    for system in systems:
        source, key = source_create(
            name=system.name, kind=system.kind, tags=[DEMO_TAG], description=f"Demo: {system.role}."
        )
        changed = []
        if system.heartbeat_period is not None:
            source.heartbeat_period = timedelta(seconds=system.heartbeat_period)
            changed.append("heartbeat_period")
        if system.heartbeat_grace is not None:
            source.heartbeat_grace = timedelta(seconds=system.heartbeat_grace)
            changed.append("heartbeat_grace")
        if changed:
            source.full_clean()
            source.save(update_fields=changed)
        keys[system.name] = key
    channel, channel_created = _channel_ensure()
    policy_created = _policy_ensure(channel)
    return Provisioned(keys, replaced, channel_created, policy_created)


def _channel_ensure() -> tuple[Channel, bool]:
    channel = demo_channel()
    if channel is not None:
        if not channel.enabled:
            channel.enabled = True
            channel.save(update_fields=["enabled"])
        return channel, False
    channel = Channel(
        name=CHANNEL_NAME, kind=Channel.Kind.CONSOLE, config={}, min_severity=Severity.INFO
    )
    channel.full_clean()
    channel.save()
    return channel, True


def _policy_ensure(channel: Channel) -> bool:
    """The policy `demo`: every alert (INFO and up) of sources tagged `demo` to `channel`."""
    policy, created = Policy.objects.get_or_create(
        name=POLICY_NAME, defaults={"min_severity": Severity.INFO}
    )
    if not created and (policy.min_severity != Severity.INFO or not policy.enabled):
        policy.min_severity = Severity.INFO
        policy.enabled = True
        policy.save(update_fields=["min_severity", "enabled"])
    policy.tags.set([Tag.objects.get(name=DEMO_TAG)])
    policy.channels.add(channel)
    return created
