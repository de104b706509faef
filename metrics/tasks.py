"""Celery tasks of the metrics app, and the hand-off to evaluation after ingestion."""

from __future__ import annotations

from celery import current_app, shared_task
from django.core.cache import cache

from .retention import samples_prune

# Coalescing: while an evaluation of a source is queued and not yet started, further
# batches of that source only find this flag set and queue nothing, so a burst of 100
# batches causes a handful of evaluations, not 100.
EVALUATION_PENDING = "evaluation-pending:{source_id}"
# Set when trades or equity arrived: the evaluation first recomputes derived metrics.
DERIVATION_NEEDED = "derivation-needed:{source_id}"
# Longer than any queue wait: a lost task (broker restart) blocks evaluation of the
# source for at most this long before the next batch queues a fresh one; beat's
# periodic evaluation covers the gap.
FLAG_SECONDS = 30

EVALUATE_SOURCE_TASK = "alerts.tasks.evaluate_source"


def source_changed_soon(source_id: int, *, derive: bool) -> None:
    """Queue one evaluation of the source (and a derivation first, if `derive`)."""
    if derive:
        cache.set(DERIVATION_NEEDED.format(source_id=source_id), 1, timeout=None)
    if cache.add(EVALUATION_PENDING.format(source_id=source_id), 1, timeout=FLAG_SECONDS):
        # By name: the alerts app builds on this one, not the other way round.
        current_app.send_task(EVALUATE_SOURCE_TASK, args=[source_id])


def claim_pending_work(source_id: int) -> bool:
    """Clear the source's flags before its evaluation; True when derivation is needed.

    Cleared before the work, so data arriving during it queues a fresh run.
    """
    cache.delete(EVALUATION_PENDING.format(source_id=source_id))
    return bool(cache.delete(DERIVATION_NEEDED.format(source_id=source_id)))


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Delete samples, trades, events and idempotency records past their retention."""
    samples_prune()
