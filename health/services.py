"""Writes of the health app."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import HealthReport, ProcessHeartbeat

PRUNE_CHUNK = 5000


def process_heartbeat_record(*, role: str, name: str) -> ProcessHeartbeat:
    """Store `now` as the last time the process `role`/`name` showed life."""
    heartbeat, _ = ProcessHeartbeat.objects.update_or_create(
        role=role, name=name, defaults={"last_seen": timezone.now()}
    )
    return heartbeat


def health_reports_prune(*, days: int | None = None, chunk: int = PRUNE_CHUNK) -> int:
    """Delete reports older than the retention (30 days), in chunks: no long lock."""
    if days is None:
        days = int(settings.TRADEWATCH_HEALTH_RETENTION_DAYS)
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            HealthReport.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:chunk]
        )
        if not ids:
            return deleted
        deleted += HealthReport.objects.filter(pk__in=ids).delete()[0]
