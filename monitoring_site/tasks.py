"""Tasks of the project itself."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="monitoring_site.tasks.ping", ignore_result=False, time_limit=10, soft_time_limit=5
)
def ping() -> str:
    """Answer "pong": proves a worker consumes the broker and can report back."""
    return "pong"
