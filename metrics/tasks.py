"""Celery tasks of the metrics app, and the hand-off to evaluation after ingestion."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from celery import current_app, shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

from core.redis_cache import cache_key, redis_cache_client, redis_script

from .arrival_budget import ArrivalBudget
from .retention import samples_prune

logger = logging.getLogger(__name__)

# Coalescing: while an evaluation of a source is queued and not yet started, further
# batches of that source only find this flag set and queue nothing; and a source is
# evaluated at most once per TRADEWATCH_EVALUATION_INTERVAL_MS (the first batch after a
# quiet spell at once, in its own request when TRADEWATCH_EVALUATE_ON_ARRIVAL is on and
# no derivation is due; the rest of a burst by a worker at the end of the interval). So
# a burst of 100 batches causes a handful of evaluations, not 100.
EVALUATION_PENDING = "evaluation-pending:{source_id}"
# When the source's last evaluation started: UNIX milliseconds, an integer (the Redis
# cache stores integers as plain numbers, which the script below can read).
LAST_EVALUATION = "evaluation-started:{source_id}"
# Set when trades or equity arrived: the evaluation first recomputes derived metrics.
DERIVATION_NEEDED = "derivation-needed:{source_id}"
# Longer than any queue wait: a lost task (broker restart) blocks evaluation of the
# source for at most this long before the next batch queues a fresh one; beat's
# periodic evaluation covers the gap.
FLAG_SECONDS = 30

EVALUATE_SOURCE_TASK = "alerts.tasks.evaluate_source"

# Metric names arriving in a batch whose evaluation is always wanted: derived trading
# metrics are computed from equity, and rules read those.
ALWAYS_EVALUATED = frozenset({"equity"})

# The flags of one batch in one round trip (the request waits for it): set the
# derivation flag if asked, raise the pending flag if it was down, and then say when the
# last evaluation started. Returns {raised (0/1), last start in ms or -1}.
_RAISE_FLAGS = """
if ARGV[1] == '1' then redis.call('SET', KEYS[3], 1) end
if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[2]) then
    local last = tonumber(redis.call('GET', KEYS[2]) or '')
    return {1, last and math.floor(last) or -1}
end
return {0, -1}
"""


def _watched_names_function() -> Callable[[], Iterable[str]] | None:
    path = getattr(settings, "TRADEWATCH_WATCHED_METRICS_FUNCTION", "")
    if not path:
        return None
    function: Callable[[], Iterable[str]] = import_string(path)
    return function


_watched: list[Callable[[], Iterable[str]] | None] = []


def evaluation_wanted(names: Iterable[str]) -> bool:
    """Whether a metric batch holding these names should queue an evaluation.

    Only when a rule reads one of them (or one feeds derived metrics): evaluating a
    source because of data nobody watches costs a worker as much as a real one, and
    delays the evaluations that matter. The watched names come from the function named
    by TRADEWATCH_WATCHED_METRICS_FUNCTION, which keeps them a few seconds: a rule just
    added for a new metric is evaluated from then on (and on beat meanwhile).
    """
    if not _watched:
        _watched.append(_watched_names_function())
    function = _watched[0]
    if function is None:
        return True
    watched = function()
    return any(name in ALWAYS_EVALUATED or name in watched for name in names)


def forget_watched_names_function() -> None:
    """Read TRADEWATCH_WATCHED_METRICS_FUNCTION again (tests that change it)."""
    _watched.clear()


def source_changed_soon(source_id: int, *, derive: bool) -> None:
    """Queue one evaluation of the source (and a derivation first, if `derive`)."""
    pending = EVALUATION_PENDING.format(source_id=source_id)
    last_key = LAST_EVALUATION.format(source_id=source_id)
    derivation = DERIVATION_NEEDED.format(source_id=source_id)
    client = redis_cache_client()
    if client is not None:
        raised, last_ms = redis_script(client, _RAISE_FLAGS)(
            keys=[cache_key(pending), cache_key(last_key), cache_key(derivation)],
            args=["1" if derive else "0", FLAG_SECONDS],
        )
        if not raised:
            return
        last = None if int(last_ms) < 0 else int(last_ms) / 1000
    else:
        if derive:
            cache.set(derivation, 1, timeout=None)
        if not cache.add(pending, 1, timeout=FLAG_SECONDS):
            return
        stored = cache.get(last_key)
        last = stored / 1000 if isinstance(stored, int) else None
    interval = settings.TRADEWATCH_EVALUATION_INTERVAL_MS / 1000
    wait = 0.0 if last is None else max(0.0, last + interval - time.time())
    # Derivation reads the source's trades and equity of the whole retention window: a
    # batch that calls for it (equity, trades) is evaluated by a worker, which derives
    # first, so no request's answer waits on that and ingestion keeps its pace.
    if (
        not (wait or derive)
        and settings.TRADEWATCH_EVALUATE_ON_ARRIVAL
        and _evaluate_here(source_id)
    ):
        return
    # By name: the alerts app builds on this one, not the other way round.
    current_app.send_task(EVALUATE_SOURCE_TASK, args=[source_id], countdown=wait or None)


# Saved-up time of the budget below: a few evaluations in a row after a quiet spell.
ARRIVAL_BURST_SECONDS = 0.1
_budgets: dict[float, ArrivalBudget] = {}


def arrival_budget() -> ArrivalBudget:
    """This process's budget for evaluations on arrival (one per configured share)."""
    share = settings.TRADEWATCH_EVALUATE_ON_ARRIVAL_SHARE
    budget = _budgets.get(share)
    if budget is None:
        budget = _budgets.setdefault(
            share, ArrivalBudget(share=share, burst_seconds=ARRIVAL_BURST_SECONDS)
        )
    return budget


def forget_arrival_budget() -> None:
    """Start this process's budget afresh (tests)."""
    _budgets.clear()


def _evaluate_here(source_id: int) -> bool:
    """Evaluate the source in this process, now; False (and nothing lost) if that failed
    or this process's `arrival_budget` is spent: the caller then queues it for a worker.

    The first batch after a quiet spell (unless derived metrics are due) is judged
    before its request is answered: no hop through the broker and a worker's queue,
    which is most of the time from a breaching sample to its alert. The rest of a burst
    still goes to a worker (the caller queues it at the end of the interval), so a busy
    source costs its requests one evaluation per interval at most.
    """
    try:
        # The task's name is its import path; imported here, so the worker's task
        # registry need not have been filled in this process.
        task = import_string(EVALUATE_SOURCE_TASK)
    except ImportError:  # the alerts app is not installed here
        return False
    budget = arrival_budget()
    if not budget.allows():
        return False
    started = time.perf_counter()
    try:
        task.run(source_id)
    except Exception:
        # The batch is stored; its evaluation must still happen. The task cleared the
        # flags when it started, so raise the derivation flag again (deriving once more
        # than needed is harmless) and let the caller queue it for a worker.
        logger.exception("evaluating source %s on arrival failed; queued instead", source_id)
        cache.set(DERIVATION_NEEDED.format(source_id=source_id), 1, timeout=None)
        return False
    finally:
        budget.spend(time.perf_counter() - started)
    return True


def claim_pending_work(source_id: int) -> bool:
    """Clear the source's flags before its evaluation; True when derivation is needed.

    Cleared before the work, so data arriving during it queues a fresh run.
    """
    pending = EVALUATION_PENDING.format(source_id=source_id)
    last_key = LAST_EVALUATION.format(source_id=source_id)
    derivation = DERIVATION_NEEDED.format(source_id=source_id)
    started_ms = int(time.time() * 1000)
    client = redis_cache_client()
    if client is not None:
        # One round trip; MULTI/EXEC, so a batch arriving meanwhile sees all or nothing.
        with client.pipeline(transaction=True) as pipe:
            pipe.set(cache_key(last_key), started_ms, ex=FLAG_SECONDS)
            pipe.delete(cache_key(pending))
            pipe.delete(cache_key(derivation))
            _, _, derived = pipe.execute()
        return bool(derived)
    cache.set(last_key, started_ms, timeout=FLAG_SECONDS)
    cache.delete(pending)
    return bool(cache.delete(derivation))


@shared_task(name="metrics.tasks.prune", time_limit=600, soft_time_limit=570)
def prune() -> None:
    """Delete samples, trades, events and idempotency records past their retention."""
    samples_prune()
