"""Tasks of the project itself."""

from __future__ import annotations

from celery import shared_task

from .digest import digests_send


@shared_task(
    name="monitoring_site.tasks.ping", ignore_result=False, time_limit=10, soft_time_limit=5
)
def ping() -> str:
    """Answer "pong": proves a worker consumes the broker and can report back."""
    return "pong"


@shared_task(name="monitoring_site.tasks.send_digests", time_limit=300, soft_time_limit=240)
def send_digests() -> int:
    """On beat: each policy's operations digest that is due and not sent yet."""
    return digests_send()
