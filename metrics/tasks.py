"""Celery tasks of the metrics app (its own periodic work; evaluation after ingestion is
the alerts app's: see `metrics.changes` and `alerts.trigger`)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .partitions import partitions_ensure
from .retention import metric_cutoff, samples_prune


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Drop partitions (delete rows) of samples, trades and events past their retention,
    with stale idempotency records, trade ids and checkpoints."""
    samples_prune()


@shared_task(name="metrics.tasks.partitions_ensure", time_limit=600, soft_time_limit=570)
def ensure_partitions() -> None:
    """Create the partitions of the coming days ahead, and of any day within the
    retention whose rows the default partition caught (PostgreSQL)."""
    now = timezone.now()
    partitions_ensure(now=now, oldest=metric_cutoff(now))
