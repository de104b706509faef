"""Retention of alerts and notifications: 90 days by default, deleted in chunks.

A resolved alert goes with its timeline, notifications and their delivery logs once
its last activity is older than `TRADEWATCH_ALERT_RETENTION_DAYS`; notifications of
alerts still kept (and those of no alert: tests, digests) go on their own once
finished and as old. Open alerts, and notifications still pending, are never deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.chunks import Progress, delete_in_chunks

from .models import Alert, Notification

CHUNK = 1000


def _cutoff(now: datetime | None, days: int | None) -> datetime:
    if days is None:
        days = int(settings.TRADEWATCH_ALERT_RETENTION_DAYS)
    return (now or timezone.now()) - timedelta(days=days)


def expired_notifications(
    *, now: datetime | None = None, days: int | None = None
) -> QuerySet[Notification]:
    """Finished notifications older than the retention."""
    return Notification.objects.filter(created_at__lt=_cutoff(now, days)).exclude(
        state=Notification.State.PENDING
    )


def expired_alerts(*, now: datetime | None = None, days: int | None = None) -> QuerySet[Alert]:
    """Resolved alerts whose last activity is older than the retention."""
    cutoff = _cutoff(now, days)
    return Alert.objects.filter(
        Q(resolved_at__lt=cutoff) | Q(resolved_at__isnull=True),
        state=Alert.State.RESOLVED,
        last_seen__lt=cutoff,
    )


def notifications_prune(
    *,
    now: datetime | None = None,
    days: int | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> int:
    """Delete expired notifications (with their delivery logs); return how many."""
    expired = expired_notifications(now=now, days=days)
    return delete_in_chunks(expired, chunk=chunk, progress=progress)


def resolved_alerts_prune(
    *,
    now: datetime | None = None,
    days: int | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> int:
    """Delete expired alerts (with their timelines and notifications); return how many."""
    return delete_in_chunks(expired_alerts(now=now, days=days), chunk=chunk, progress=progress)


def alerts_prune(
    *, now: datetime | None = None, days: int | None = None, chunk: int = CHUNK
) -> dict[str, int]:
    """Delete expired notifications, then expired alerts; return how many of each."""
    return {
        "notifications": notifications_prune(now=now, days=days, chunk=chunk),
        "alerts": resolved_alerts_prune(now=now, days=days, chunk=chunk),
    }
