"""Celery tasks of the alerts app: ids in, one service call each."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from core.generations import generations_read_once
from metrics.derived import pending_derivations, trading_metrics_catch_up
from metrics.models import Source

from .delivery import notification_deliver, outbox_sweep
from .escalation import alerts_escalate
from .evaluation import all_sources_evaluate
from .trigger import DERIVE_SECONDS, WORKER_ROUNDS, evaluation_run

logger = logging.getLogger(__name__)


@shared_task(name="alerts.tasks.evaluate_source", time_limit=60, soft_time_limit=50)
def evaluate_source(source_id: int) -> None:
    """Right after a source's data arrived: derive its trading metrics if due, evaluate
    (queued by `alerts.trigger`, which keeps one evaluation of a source in flight)."""
    with generations_read_once():  # rules and policies: one round trip for their tokens
        evaluation_run(source_id, rounds=WORKER_ROUNDS)


@shared_task(name="alerts.tasks.evaluate_all_sources", time_limit=120, soft_time_limit=110)
def evaluate_all_sources() -> None:
    """On beat: rules that depend on time passing (absence, staleness, `for`, expiry);
    first, derivation of batches whose hint was lost (the cache or broker was away)."""
    started = time.monotonic()
    for source in Source.objects.filter(pk__in=pending_derivations(), enabled=True):
        budget = DERIVE_SECONDS - (time.monotonic() - started)
        if budget <= 0:
            break  # the rest stays requested, for the next run
        try:
            trading_metrics_catch_up(source=source, budget_seconds=budget)
        except Exception:  # one source's failure must not stop every other evaluation
            logger.exception("deriving the trading metrics of source %s failed", source.pk)
    summary = all_sources_evaluate()
    logger.info(
        "evaluated %d sources: %d evaluations, %d applied",
        summary.sources, summary.evaluations, summary.applied,
    )  # fmt: skip


@shared_task(
    name="alerts.tasks.deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=60,
    soft_time_limit=45,
)
def deliver(notification_id: int) -> None:
    """Send one notification (ids only: secrets never travel through the broker)."""
    notification_deliver(notification_id=notification_id)


@shared_task(name="alerts.tasks.sweep_outbox", time_limit=60, soft_time_limit=50)
def sweep_outbox() -> None:
    """On beat: queue notifications that are due, lost by the broker, or abandoned."""
    queued = outbox_sweep()
    if queued:
        logger.info("outbox sweep queued %d notifications", queued)


@shared_task(name="alerts.tasks.escalate", time_limit=60, soft_time_limit=50)
def escalate() -> None:
    """On beat: alerts unacknowledged past their policy's escalation time."""
    escalated = alerts_escalate()
    if escalated:
        logger.info("escalated %d alerts", escalated)


@shared_task(name="alerts.tasks.prune", time_limit=600, soft_time_limit=540)
def prune() -> None:
    """On beat: delete resolved alerts and finished notifications past their retention."""
    from .retention import alerts_prune

    deleted = alerts_prune()
    if any(deleted.values()):
        logger.info("pruned %(alerts)d alerts and %(notifications)d notifications", deleted)
