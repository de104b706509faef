"""Writes of the health app."""

from __future__ import annotations

from django.utils import timezone

from .models import ProcessHeartbeat


def process_heartbeat_record(*, role: str, name: str) -> ProcessHeartbeat:
    """Store `now` as the last time the process `role`/`name` showed life."""
    heartbeat, _ = ProcessHeartbeat.objects.update_or_create(
        role=role, name=name, defaults={"last_seen": timezone.now()}
    )
    return heartbeat
