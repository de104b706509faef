"""Celery tasks of the alerts app: ids in, one service call each."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from celery import shared_task
from celery.result import AsyncResult

from core.generations import generations_read_once
from metrics.derived import pending_derivations, trading_metrics_catch_up
from metrics.models import Source

from .delivery import notification_deliver, outbox_sweep
from .escalation import alerts_escalate
from .evaluation import enabled_source_ids, sources_evaluate
from .trigger import DERIVE_SECONDS, WORKER_ROUNDS, evaluation_run

logger = logging.getLogger(__name__)


@shared_task(name="alerts.tasks.evaluate_source", time_limit=60, soft_time_limit=50)
def evaluate_source(source_id: int) -> None:
    """Right after a source's data arrived: derive its trading metrics if due, evaluate
    (queued by `alerts.trigger`, which keeps one evaluation of a source in flight)."""
    with generations_read_once():  # rules and policies: one round trip for their tokens
        evaluation_run(source_id, rounds=WORKER_ROUNDS)


# Beat's evaluation of every source is shared out in parts of this many sources, each a
# task on the `ingest` queue, so every ingest worker on every host takes some of each
# cycle (in one task, one CPU bounds the cycle however many workers run). Small enough
# that a few workers share 1,000 sources evenly; large enough that a part's fixed cost
# (its few queries do not grow with its sources) stays a small share of it.
EVALUATION_PART_SOURCES = 100
# A part still queued when the next cycle starts is superseded by that cycle's.
EVALUATION_PART_EXPIRES_SECONDS = 15


@shared_task(name="alerts.tasks.evaluate_all_sources", time_limit=120, soft_time_limit=110)
def evaluate_all_sources() -> None:
    """On beat: rules that depend on time passing (absence, staleness, `for`, expiry);
    first, derivation of batches whose hint was lost (the cache or broker was away).
    Up to `EVALUATION_PART_SOURCES` sources are evaluated here; more are shared out."""
    started = time.monotonic()
    for source in Source.objects.filter(pk__in=pending_derivations(), enabled=True):
        budget = DERIVE_SECONDS - (time.monotonic() - started)
        if budget <= 0:
            break  # the rest stays requested, for the next run
        try:
            trading_metrics_catch_up(source=source, budget_seconds=budget)
        except Exception:  # one source's failure must not stop every other evaluation
            logger.exception("deriving the trading metrics of source %s failed", source.pk)
    ids = enabled_source_ids()
    if len(ids) > EVALUATION_PART_SOURCES:
        parts = evaluation_parts_send(ids, size=EVALUATION_PART_SOURCES)
        logger.info("shared out the evaluation of %d sources in %d parts", len(ids), len(parts))
        return
    summary = sources_evaluate(source_ids=ids)
    logger.info(
        "evaluated %d sources: %d evaluations, %d applied",
        summary.sources, summary.evaluations, summary.applied,
    )  # fmt: skip


def evaluation_parts_send(
    source_ids: Sequence[int],
    *,
    size: int = EVALUATION_PART_SOURCES,
    keep_results: bool = False,
    queue: str | None = None,
) -> list[AsyncResult[dict[str, int]]]:
    """Queue the evaluation of `source_ids` as parts of `size` sources for any ingest
    worker; `keep_results`: store what each part did, for the caller to wait on, and
    `queue`: another queue than `ingest` (both for the benchmark; beat's runs store
    nothing)."""
    return [
        evaluate_sources.apply_async(
            (list(source_ids[start : start + size]),),
            expires=EVALUATION_PART_EXPIRES_SECONDS,
            ignore_result=not keep_results,
            queue=queue or "ingest",  # where settings.CELERY_TASK_ROUTES sends them
        )
        for start in range(0, len(source_ids), size)
    ]


@shared_task(name="alerts.tasks.evaluate_sources", time_limit=60, soft_time_limit=50)
def evaluate_sources(source_ids: list[int]) -> dict[str, int]:
    """One part of beat's evaluation of every source (see `evaluate_all_sources`)."""
    with generations_read_once():  # rules and policies: one round trip for their tokens
        summary = sources_evaluate(source_ids=source_ids)
    return {
        "sources": summary.sources,
        "evaluations": summary.evaluations,
        "applied": summary.applied,
    }


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


@shared_task(name="alerts.tasks.backtest", time_limit=900, soft_time_limit=840)
def backtest(job_id: str) -> None:
    """A rule backtest asked for in the admin or the API (a job held in the cache)."""
    from .backtest.jobs import job_run

    job_run(job_id)


@shared_task(name="alerts.tasks.prune", time_limit=600, soft_time_limit=540)
def prune() -> None:
    """On beat: delete resolved alerts and finished notifications past their retention."""
    from .retention import alerts_prune

    deleted = alerts_prune()
    if any(deleted.values()):
        logger.info("pruned %(alerts)d alerts and %(notifications)d notifications", deleted)
