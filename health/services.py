"""Writes of the health app."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from core.chunks import Progress, delete_in_chunks

from .models import HealthReport, ProcessHeartbeat

PRUNE_CHUNK = 5000


def process_heartbeat_record(*, role: str, name: str) -> ProcessHeartbeat:
    """Store `now` as the last time the process `role`/`name` showed life."""
    heartbeat, _ = ProcessHeartbeat.objects.update_or_create(
        role=role, name=name, defaults={"last_seen": timezone.now()}
    )
    return heartbeat


def expired_health_reports(*, days: int | None = None) -> QuerySet[HealthReport]:
    """Reports older than the retention (30 days by default)."""
    if days is None:
        days = int(settings.TRADEWATCH_HEALTH_RETENTION_DAYS)
    return HealthReport.objects.filter(created_at__lt=timezone.now() - timedelta(days=days))


def health_reports_prune(
    *, days: int | None = None, chunk: int = PRUNE_CHUNK, progress: Progress | None = None
) -> int:
    """Delete reports older than the retention, in chunks: no long lock, and two runs at
    once each take their own chunks (SKIP LOCKED)."""
    return delete_in_chunks(expired_health_reports(days=days), chunk=chunk, progress=progress)
