"""Backtests that run in a worker: a job in the cache, its progress, its answer.

A job is a few keys of the shared cache (Redis, or the embedded mode's file cache),
kept for an hour: what was asked, where it stands (queued, running, done, failed) with
its progress from 0 to 1, and the answer once done. Nothing goes to the database: a
backtest writes nothing there, not even its own bookkeeping. The admin page and
`GET /api/v1/backtests/<job>` poll it; the worker's task (`alerts.tasks.backtest`)
runs `job_run`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Final

from django.core.cache import cache
from django.utils import timezone

from . import BacktestRefused, BacktestRequest, backtest_run

logger = logging.getLogger(__name__)

JOB_SECONDS: Final = 3600
# How often a running job writes its progress (a cache round trip each time).
PROGRESS_EVERY_SECONDS: Final = 0.5
_JOB: Final = "backtest-job:{job_id}"
_ANSWER: Final = "backtest-answer:{job_id}"

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def job_start(request: BacktestRequest, *, user_id: int | None = None) -> str:
    """Record a job for `request` and queue it for a worker; return its id. A broker
    that cannot be reached fails the job at once (saying so) rather than leaving it
    queued for ever."""
    job_id = uuid.uuid4().hex
    _save(
        job_id,
        {
            "job": job_id, "status": QUEUED, "progress": 0.0, "rule_id": request.rule_id,
            "request": request.as_json(), "user_id": user_id, "error": None,
            "created_at": timezone.now().isoformat(),
        },
    )  # fmt: skip
    from alerts.tasks import backtest  # the tasks module builds on the apps' services

    try:
        backtest.delay(job_id)
    except Exception:  # the broker is away: say so instead of waiting for ever
        logger.warning("backtest %s not queued (broker unavailable)", job_id, exc_info=True)
        _update(job_id, status=FAILED, error="No worker could be reached: try again later.")
    return job_id


def job_get(job_id: str) -> dict[str, Any] | None:
    """The job (status, progress, error, and `result` once done), or None (unknown or
    older than an hour)."""
    job: dict[str, Any] | None = cache.get(_JOB.format(job_id=job_id))
    if job is None:
        return None
    job = dict(job)
    job["result"] = cache.get(_ANSWER.format(job_id=job_id)) if job["status"] == DONE else None
    return job


def job_run(job_id: str) -> None:
    """Run the job (in a worker): progress as it goes, then the answer or the error."""
    job = cache.get(_JOB.format(job_id=job_id))
    if job is None or job["status"] not in (QUEUED, RUNNING):
        return  # expired, or run already (a message delivered twice)
    _update(job_id, status=RUNNING, progress=0.0)
    written = [time.monotonic()]

    def progress(fraction: float) -> None:
        if time.monotonic() - written[0] >= PROGRESS_EVERY_SECONDS:
            written[0] = time.monotonic()
            _update(job_id, progress=round(min(1.0, max(0.0, fraction)), 3))

    try:
        answer = backtest_run(BacktestRequest.from_json(job["request"]), progress=progress)
    except BacktestRefused as exc:
        _update(job_id, status=FAILED, error=exc.message, field=exc.field)
        return
    except Exception:
        logger.exception("backtest %s failed", job_id)
        _update(job_id, status=FAILED, error="The backtest failed; the worker's log says why.")
        return
    cache.set(_ANSWER.format(job_id=job_id), answer, timeout=JOB_SECONDS)
    _update(job_id, status=DONE, progress=1.0)


def _save(job_id: str, job: dict[str, Any]) -> None:
    cache.set(_JOB.format(job_id=job_id), job, timeout=JOB_SECONDS)


def _update(job_id: str, **changes: Any) -> None:
    job = cache.get(_JOB.format(job_id=job_id))
    if job is None:
        return
    job.update(changes)
    _save(job_id, job)
