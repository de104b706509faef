"""A person's resolve that holds while the same problem goes on.

Evaluation judges the same data again within seconds of a person resolving an alert:
without this, the problem they just closed would open again as a new alert. The
resolved alert keeps `keep_resolved` while the problem lasts; evaluation asks
`still_kept` with what it found and, once that says no, releases it, so the next breach
opens a new alert (README, "How an alert moves": resolved by a person).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from metrics.models import Event

from . import engine
from .models import Alert, Rule


@dataclass(frozen=True)
class KeptResolved:
    """A problem a person resolved, kept resolved while it lasts (see `still_kept`)."""

    id: int
    severity: int
    # Event rules: the newest event when it was resolved.
    through: datetime | None


def still_kept(kept: KeptResolved, evaluation: engine.Evaluation, newest: datetime | None) -> bool:
    """Whether a person's resolve still holds against what evaluation found now.

    It holds while the same problem goes on: a breach no worse than the one resolved
    (judged with its threshold's clear value, as if it still fired) and, for event
    rules, no event newer than those the person saw (`newest`: the newest point
    judged). A clear condition ends it, so the next breach is a new alert; so does a
    worse severity or a new event, which are new problems. Too little data to judge
    keeps it.
    """
    if evaluation.status == "insufficient_data":
        return True
    if evaluation.status != "breach" or evaluation.severity is None:
        return False
    if int(evaluation.severity) > kept.severity:
        return False
    return not (kept.through is not None and newest is not None and newest > kept.through)


def kept_resolved_mark(alert: Alert) -> None:
    """Keep the problem of `alert`, which a person is resolving, resolved while it lasts
    (the caller saves the alert)."""
    rule = alert.rule
    # Its condition cleared already, in `keep_firing_for`: the next breach is news.
    # Health rules are judged by `health.alerting`, which never releases a kept resolve.
    if rule.kind == Rule.Kind.HEALTH or alert.condition_cleared_at is not None:
        return
    # One kept resolve per fingerprint: an older one ends here.
    Alert.objects.filter(fingerprint=alert.fingerprint, keep_resolved=True).update(
        keep_resolved=False
    )
    alert.keep_resolved = True
    if rule.kind == Rule.Kind.EVENT:
        alert.keep_resolved_through = Event.objects.filter(
            source_id=alert.source_id, type=rule.metric
        ).aggregate(newest=Max("ts"))["newest"]


def kept_resolved_release(*, alert_id: int) -> None:
    """End a person's resolve: the problem's next breach opens a new alert."""
    Alert.objects.filter(pk=alert_id, keep_resolved=True).update(keep_resolved=False)


def is_kept_resolved(fingerprint: str) -> bool:
    """Whether a person's resolve holds for the problem of `fingerprint`."""
    return Alert.objects.filter(fingerprint=fingerprint, keep_resolved=True).exists()
