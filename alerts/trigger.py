"""When a source is evaluated after its data arrives: the one owner of that decision.

`metrics.changes` announces each stored batch (settings.TRADEWATCH_SOURCE_CHANGED_HANDLERS
names `source_changed` below). From there:

* Batches no rule reads (metric names no enabled rule watches) cause nothing.
* **Single flight.** At most one evaluation of a source is in flight (queued or
  running). A change arriving meanwhile only marks the source "again"; when the
  evaluation in flight ends it queues one more, which takes in everything that arrived
  meanwhile. A breach so waits for at most one evaluation, never for a fixed interval,
  and a burst of 100 batches still costs a handful of evaluations, not 100.
* **On arrival.** The first change after a quiet spell is evaluated in the request that
  brought it, before the answer (no hop through the broker and a worker's queue, which
  is most of the time from a breaching sample to its alert), unless derived trading
  metrics are due (a worker derives first, so no answer waits on a fold of a late batch)
  or this web process's share of time for it is spent (`ArrivalBudget`).
* **Flags** live in the shared cache (Redis): in flight (with an expiry, so a worker
  killed mid-evaluation holds the source back for at most `FLAG_SECONDS`; beat's
  evaluation of every source covers the gap), again, and derivation needed (also
  recorded in the database by ingestion, so a lost flag only delays a derivation
  until beat).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from django.conf import settings
from django.core.cache import cache

from core.redis_cache import cache_key, redis_cache_client, redis_script
from metrics.changes import SourceChange
from metrics.derived import trading_metrics_catch_up
from metrics.models import Source

from .arrival_budget import ArrivalBudget
from .evaluation import source_evaluate, watched_metric_names

logger = logging.getLogger(__name__)

IN_FLIGHT: Final = "evaluation-in-flight:{source_id}"
AGAIN: Final = "evaluation-again:{source_id}"
DERIVATION_NEEDED: Final = "derivation-needed:{source_id}"
# Longer than any queue wait and any evaluation (its task's time limit is 60 s, but one
# that long is a fault): a lost task or a killed worker holds the source's evaluations
# after arrival back for at most this long; beat evaluates every source meanwhile.
FLAG_SECONDS: Final = 30
# Metric names whose batches are always evaluated: derived trading metrics come from
# equity, and rules read those.
ALWAYS_EVALUATED: Final = frozenset({"equity"})
# Derivation's share of an evaluation's time: a month of history to fold from scratch
# (after an upgrade) goes on in the next runs; the evaluation after it must still fit.
DERIVE_SECONDS: Final = 20.0
# Saved-up time of the arrival budget: a few evaluations in a row after a quiet spell.
ARRIVAL_BURST_SECONDS: Final = 0.1

# One round trip for a change: ask for derivation if due; start an evaluation if none
# is in flight (1), else mark the source to be evaluated again when it ends (0).
_REQUEST = """
if ARGV[1] == '1' then redis.call('SET', KEYS[3], 1) end
if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[2], 1, 'EX', ARGV[2])
return 0
"""
# When an evaluation ends: if changes came meanwhile, the source stays in flight and the
# caller queues the next evaluation (1); else it is idle again (0).
_FINISH = """
if redis.call('DEL', KEYS[2]) == 1 then
    redis.call('SET', KEYS[1], 1, 'EX', ARGV[1])
    return 1
end
redis.call('DEL', KEYS[1])
return 0
"""


def _keys(source_id: int) -> tuple[str, str, str]:
    return (
        IN_FLIGHT.format(source_id=source_id),
        AGAIN.format(source_id=source_id),
        DERIVATION_NEEDED.format(source_id=source_id),
    )


# --- the hook ----------------------------------------------------------------------------


def source_changed(change: SourceChange) -> None:
    """Handle a stored batch (see `metrics.changes`): evaluate the source if a rule may
    care, now or soon."""
    if (
        change.names is not None
        and not change.derive
        and not any(name in ALWAYS_EVALUATED for name in change.names)
        and change.names.isdisjoint(watched_metric_names())
    ):
        return
    evaluation_request(change.source_id, derive=change.derive)


def evaluation_request(source_id: int, *, derive: bool = False) -> None:
    """Have the source evaluated (deriving its trading metrics first if `derive`): at
    once if no evaluation of it is in flight, else right after the one that is."""
    if not _start_or_mark_again(source_id, derive=derive):
        return
    if not derive and settings.TRADEWATCH_EVALUATE_ON_ARRIVAL and _evaluate_here(source_id):
        return
    _queue(source_id)


def _start_or_mark_again(source_id: int, *, derive: bool) -> bool:
    in_flight, again, derivation = _keys(source_id)
    client = redis_cache_client()
    if client is not None:
        started = redis_script(client, _REQUEST)(
            keys=[cache_key(in_flight), cache_key(again), cache_key(derivation)],
            args=["1" if derive else "0", FLAG_SECONDS],
        )
        return bool(started)
    if derive:
        cache.set(derivation, 1, timeout=None)
    if cache.add(in_flight, 1, timeout=FLAG_SECONDS):
        return True
    cache.set(again, 1, timeout=FLAG_SECONDS)
    return False


def _queue(source_id: int) -> None:
    from .tasks import evaluate_source  # the tasks module builds on this one

    evaluate_source.delay(source_id)


# --- an evaluation -----------------------------------------------------------------------


def evaluation_run(source_id: int, *, retry_in_worker: bool = False) -> None:
    """Evaluate the source (deriving first if a batch asked for it); then, if changes
    came meanwhile, queue the next evaluation. What a worker's task and an evaluation on
    arrival both run; `retry_in_worker`: should this one fail, a worker tries again (a
    worker's own failure is not retried: it would fail again; beat evaluates anyway)."""
    derive = evaluation_claim(source_id)
    try:
        _evaluate(source_id, derive=derive)
    except BaseException:
        if derive:
            _derivation_ask_again(source_id)  # deriving once more than needed is harmless
        if evaluation_finish(source_id) or retry_in_worker:
            _queue(source_id)
        raise
    if evaluation_finish(source_id):
        _queue(source_id)


def _evaluate(source_id: int, *, derive: bool) -> None:
    if derive:
        source = Source.objects.filter(pk=source_id, enabled=True).first()
        if source is None:
            return
        derivation = trading_metrics_catch_up(source=source, budget_seconds=DERIVE_SECONDS)
        source_evaluate(source_id=source_id, source=source, extremes=derivation.extremes)
        return
    # Disabled sources are skipped there too; no need to read the source row first.
    source_evaluate(source_id=source_id)


def evaluation_claim(source_id: int) -> bool:
    """Mark the source's evaluation as started; return whether derivation is due.

    The "again" mark is cleared before the work: changes arriving during it mark the
    source again, for one more evaluation after this one.
    """
    in_flight, again, derivation = _keys(source_id)
    client = redis_cache_client()
    if client is not None:
        # One round trip; MULTI/EXEC, so a change arriving meanwhile sees all or nothing.
        with client.pipeline(transaction=True) as pipe:
            pipe.set(cache_key(in_flight), 1, ex=FLAG_SECONDS)
            pipe.delete(cache_key(again))
            pipe.delete(cache_key(derivation))
            *_, derived = pipe.execute()
        return bool(derived)
    cache.set(in_flight, 1, timeout=FLAG_SECONDS)
    cache.delete(again)
    return bool(cache.delete(derivation))


def evaluation_finish(source_id: int) -> bool:
    """Mark the source's evaluation as ended; True when changes arrived meanwhile (the
    source stays in flight and the caller queues the next evaluation)."""
    in_flight, again, _ = _keys(source_id)
    client = redis_cache_client()
    if client is not None:
        return bool(
            redis_script(client, _FINISH)(
                keys=[cache_key(in_flight), cache_key(again)], args=[FLAG_SECONDS]
            )
        )
    if cache.delete(again):
        cache.set(in_flight, 1, timeout=FLAG_SECONDS)
        return True
    cache.delete(in_flight)
    return False


def _derivation_ask_again(source_id: int) -> None:
    try:
        cache.set(DERIVATION_NEEDED.format(source_id=source_id), 1, timeout=None)
    except Exception:  # the database keeps the request: beat derives it
        logger.warning("could not flag source %s for derivation", source_id, exc_info=True)


# --- evaluation on arrival ---------------------------------------------------------------

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
    """Evaluate the source in this process, now (should that fail, a worker tries
    again); False if this process's `arrival_budget` is spent: the caller then queues it.
    """
    budget = arrival_budget()
    if not budget.allows():
        return False
    started = time.perf_counter()
    try:
        evaluation_run(source_id, retry_in_worker=True)
    except Exception:
        # The batch is stored and its evaluation queued for a worker; the answer is 202.
        logger.exception("evaluating source %s on arrival failed; queued instead", source_id)
    finally:
        budget.spend(time.perf_counter() - started)
    return True
