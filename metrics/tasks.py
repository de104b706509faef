"""Celery tasks of the metrics app: ids in, one service call each."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from .derived import trading_metrics_derive
from .models import Source
from .retention import samples_prune

# Coalescing: while a derivation is queued and not yet started, further batches of the
# same source only find this flag set and queue nothing, so a burst of 100 batches
# causes a couple of derivations, not 100.
PENDING_KEY = "derive-pending:{source_id}"
PENDING_SECONDS = 60


def derive_trading_metrics_soon(source_id: int) -> None:
    """Queue one derivation for the source unless one is already waiting."""
    if cache.add(PENDING_KEY.format(source_id=source_id), 1, timeout=PENDING_SECONDS):
        derive_trading_metrics.delay(source_id)


@shared_task(
    name="metrics.tasks.derive_trading_metrics",
    time_limit=60,
    soft_time_limit=50,
)
def derive_trading_metrics(source_id: int) -> None:
    """Recompute a source's derived trading metrics."""
    # Cleared before the work, so data arriving during it queues a fresh run.
    cache.delete(PENDING_KEY.format(source_id=source_id))
    source = Source.objects.filter(pk=source_id, enabled=True).first()
    if source is not None:
        trading_metrics_derive(source=source)


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Delete samples, trades, events and idempotency records past their retention."""
    samples_prune()
