"""Periodic health work; each task loads what it needs and calls one service."""

from __future__ import annotations

from celery import shared_task

from .services import process_heartbeat_record


@shared_task(name="health.tasks.record_beat_tick", time_limit=10, soft_time_limit=5)
def record_beat_tick() -> None:
    """Record that beat scheduled work and a worker ran it."""
    process_heartbeat_record(role="beat", name="beat")
