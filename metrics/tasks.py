"""Celery tasks of the metrics app (its own periodic work; evaluation after ingestion is
the alerts app's: see `metrics.changes` and `alerts.trigger`)."""

from __future__ import annotations

from celery import shared_task

from .retention import samples_prune


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Delete samples, trades, events and idempotency records past their retention."""
    samples_prune()
