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


@shared_task(name="health.tasks.run_recovery_sweep", time_limit=60, soft_time_limit=45)
def run_recovery_sweep() -> int:
    """Trigger recovery actions of fired alerts and queue the runs that are due."""
    from .recovery import recovery_sweep

    return recovery_sweep()


@shared_task(name="health.tasks.run_recovery_action", time_limit=60, soft_time_limit=45)
def run_recovery_action(run_id: int) -> None:
    """Send one attempt of a recovery action run (a no-op unless it is due)."""
    from .recovery import recovery_run_attempt

    recovery_run_attempt(run_id=run_id)


@shared_task(name="health.tasks.prune", time_limit=600, soft_time_limit=540)
def prune() -> int:
    """Delete health reports past their retention; return how many."""
    return health_reports_prune()
