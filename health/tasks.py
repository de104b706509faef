"""Periodic health work; each task loads what it needs and calls one service."""

from __future__ import annotations

from celery import shared_task

from .services import health_reports_prune, process_heartbeat_record


@shared_task(name="health.tasks.record_beat_tick", time_limit=10, soft_time_limit=5)
def record_beat_tick() -> None:
    """Record that beat scheduled work and a worker ran it."""
    process_heartbeat_record(role="beat", name="beat")


# Claims for 4 s, then waits for running probes (each at most its timeout, 120 s).
@shared_task(name="health.tasks.run_due_checks", time_limit=180, soft_time_limit=150)
def run_due_checks() -> int:
    """Run the health checks that are due; return how many ran."""
    from .runner import checks_run_due

    return checks_run_due().ran


@shared_task(name="health.tasks.prune", time_limit=600, soft_time_limit=540)
def prune() -> int:
    """Delete health reports past their retention; return how many."""
    return health_reports_prune()
