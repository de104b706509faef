"""Celery tasks of the alerts app: ids in, one service call each."""

from __future__ import annotations

import logging

from celery import shared_task

from metrics.derived import trading_metrics_derive
from metrics.models import Source
from metrics.tasks import claim_pending_work

from .evaluation import all_sources_evaluate, source_evaluate

logger = logging.getLogger(__name__)


@shared_task(name="alerts.tasks.evaluate_source", time_limit=60, soft_time_limit=50)
def evaluate_source(source_id: int) -> None:
    """Right after a source's data arrived: derive its trading metrics if due, evaluate."""
    if claim_pending_work(source_id):
        source = Source.objects.filter(pk=source_id, enabled=True).first()
        if source is None:
            return
        trading_metrics_derive(source=source)
    # Disabled sources are skipped there too; no need to read the source row first.
    source_evaluate(source_id=source_id)


@shared_task(name="alerts.tasks.evaluate_all_sources", time_limit=120, soft_time_limit=110)
def evaluate_all_sources() -> None:
    """On beat: rules that depend on time passing (absence, staleness, `for`, expiry)."""
    summary = all_sources_evaluate()
    logger.info(
        "evaluated %d sources: %d evaluations, %d applied",
        summary.sources, summary.evaluations, summary.applied,
    )  # fmt: skip
