"""Celery tasks of the metrics app, and the hand-off to evaluation after ingestion."""

from __future__ import annotations

import time

from celery import current_app, shared_task
from django.conf import settings
from django.core.cache import cache

from .retention import samples_prune

# Coalescing: while an evaluation of a source is queued and not yet started, further
# batches of that source only find this flag set and queue nothing; and a source is
# evaluated at most once per TRADEWATCH_EVALUATION_INTERVAL_MS (the first batch after a
# quiet spell at once, the rest of a burst at the end of the interval). So a burst of
# 100 batches causes a handful of evaluations, not 100.
EVALUATION_PENDING = "evaluation-pending:{source_id}"
LAST_EVALUATION = "evaluation-started:{source_id}"
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
        interval = settings.TRADEWATCH_EVALUATION_INTERVAL_MS / 1000
        last = cache.get(LAST_EVALUATION.format(source_id=source_id))
        wait = 0.0 if last is None else max(0.0, last + interval - time.time())
        # By name: the alerts app builds on this one, not the other way round.
        current_app.send_task(EVALUATE_SOURCE_TASK, args=[source_id], countdown=wait or None)


def claim_pending_work(source_id: int) -> bool:
    """Clear the source's flags before its evaluation; True when derivation is needed.

    Cleared before the work, so data arriving during it queues a fresh run.
    """
    cache.set(LAST_EVALUATION.format(source_id=source_id), time.time(), timeout=FLAG_SECONDS)
    cache.delete(EVALUATION_PENDING.format(source_id=source_id))
    return bool(cache.delete(DERIVATION_NEEDED.format(source_id=source_id)))


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Delete samples, trades, events and idempotency records past their retention."""
    samples_prune()
