"""When a source is evaluated after its data arrives: the one owner of that decision.

`metrics.changes` announces each stored batch (settings.TRADEWATCH_SOURCE_CHANGED_HANDLERS
names `source_changed` below). From there:

* Batches no rule reads (metric names no enabled rule watches) cause nothing.
* **Only what changed.** An evaluation after arrivals judges only the rules that read
  the metric names that arrived since the last one (`alerts.evaluation.rules_reading`);
  trades, events, heartbeats and equity (derivation) have every rule judged. The names
  gather in a set beside the flags, so coalesced batches lose none. What time alone does
  (absence, `for`, expiry) is beat's evaluation of every rule, every 15 s.
* **Single flight.** At most one evaluation of a source is in flight (queued or
  running). A change arriving meanwhile only marks the source "again"; when the
  evaluation in flight ends it queues one more, which takes in everything that arrived
  meanwhile. A breach so waits for at most one evaluation, never for a fixed interval,
  and a burst of 100 batches still costs a handful of evaluations, not 100. A worker
  whose evaluation ends with the source marked again evaluates it again at once (up to
  `WORKER_ROUNDS` times in a row) instead of queueing it behind every other source.
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
from dataclasses import dataclass
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
NAMES: Final = "evaluation-names:{source_id}"
# In the set of names: every rule is to be judged (trades, events, derivation ...).
EVERY_RULE: Final = "*"
# A batch of more names than this has every rule judged (one set member per name).
NAMES_MAX: Final = 200
# Evaluations of a source a worker runs in a row while changes keep coming (then the
# source waits its turn in the queue, so a busy one cannot hold a worker).
WORKER_ROUNDS: Final = 5
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

# One round trip for a change: ask for derivation if due; add the changed names to
# those the next evaluation judges; if an evaluation is in flight, mark the source to be
# evaluated again when it ends (0); else start one (1), and when the caller evaluates
# it here (ARGV[3]) and no derivation is due, claim it too: the names to judge (a list).
_REQUEST = """
if ARGV[1] == '1' then redis.call('SET', KEYS[3], 1) end
redis.call('SADD', KEYS[4], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[4], ARGV[2])
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[2]) then
    redis.call('SET', KEYS[2], 1, 'EX', ARGV[2])
    return 0
end
if ARGV[3] == '0' or redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
redis.call('DEL', KEYS[2])
local names = redis.call('SMEMBERS', KEYS[4])
redis.call('DEL', KEYS[4])
return names
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


def _keys(source_id: int) -> tuple[str, str, str, str]:
    return (
        IN_FLIGHT.format(source_id=source_id),
        AGAIN.format(source_id=source_id),
        DERIVATION_NEEDED.format(source_id=source_id),
        NAMES.format(source_id=source_id),
    )


@dataclass(frozen=True)
class Claim:
    """What an evaluation that starts is to do."""

    derive: bool  # derive the trading metrics first
    names: frozenset[str] | None  # judge only the rules reading these; None: every rule


# --- the hook ----------------------------------------------------------------------------


def source_changed(change: SourceChange) -> None:
    """Handle a stored batch (see `metrics.changes`): evaluate the source if a rule may
    care, now or soon."""
    names = None  # every rule: trades, events, heartbeats, or derivation due
    if change.names is not None and not change.derive:
        names = change.names & watched_metric_names()
        if not names:
            if ALWAYS_EVALUATED.isdisjoint(change.names):
                return  # no rule reads any of them
            names = None
    evaluation_request(change.source_id, derive=change.derive, names=names)


def evaluation_request(
    source_id: int, *, derive: bool = False, names: frozenset[str] | None = None
) -> None:
    """Have the source evaluated (deriving its trading metrics first if `derive`; only
    the rules reading `names`, if given): at once if no evaluation of it is in flight,
    else right after the one that is."""
    # Evaluate it in this request, if it starts (a worker derives: no answer waits on a
    # fold of a late batch) and this process's share of time for it is not spent.
    here = not derive and settings.TRADEWATCH_EVALUATE_ON_ARRIVAL and arrival_budget().allows()
    started = _start_or_mark_again(source_id, derive=derive, names=names, claim=here)
    if started is None:
        return
    # Claimed here; or, with no shared flags (the embedded mode), here as before.
    claimed_here = isinstance(started, Claim) or (here and redis_cache_client() is None)
    if claimed_here and _evaluate_here(source_id, started):
        return
    _queue(source_id)


# `_start_or_mark_again`: started, and claimed by the caller (the claim), or to be
# claimed by whoever evaluates it (True).
Started = Claim | bool


def _start_or_mark_again(
    source_id: int, *, derive: bool, names: frozenset[str] | None, claim: bool
) -> Started | None:
    """None if an evaluation is in flight (the source is marked again); else started."""
    in_flight, again, derivation, names_key = _keys(source_id)
    client = redis_cache_client()
    if client is not None:
        members = sorted(names) if names and len(names) <= NAMES_MAX else [EVERY_RULE]
        started = redis_script(client, _REQUEST)(
            keys=[
                cache_key(in_flight), cache_key(again), cache_key(derivation),
                cache_key(names_key),
            ],
            args=["1" if derive else "0", FLAG_SECONDS, "1" if claim else "0", *members],
        )  # fmt: skip
        if isinstance(started, list):
            return Claim(derive=False, names=_names_of(started))
        return True if started else None
    # Without Redis (the embedded mode's local cache) every evaluation judges every rule.
    if derive:
        cache.set(derivation, 1, timeout=None)
    if cache.add(in_flight, 1, timeout=FLAG_SECONDS):
        return True
    cache.set(again, 1, timeout=FLAG_SECONDS)
    return None


def _names_of(members: list[bytes]) -> frozenset[str] | None:
    """The names an evaluation judges, from the set's members: None for every rule (also
    when the set is empty: it expired, or Redis restarted; judging all is safe)."""
    names = frozenset(member.decode() for member in members)
    return None if not names or EVERY_RULE in names else names


def _queue(source_id: int) -> None:
    from .tasks import evaluate_source  # the tasks module builds on this one

    evaluate_source.delay(source_id)


# --- an evaluation -----------------------------------------------------------------------


def evaluation_run(
    source_id: int,
    *,
    retry_in_worker: bool = False,
    rounds: int = 1,
    claimed: Claim | None = None,
) -> None:
    """Evaluate the source (deriving first if a batch asked for it); then, if changes
    came meanwhile, evaluate again (at most `rounds` evaluations here) or queue the next
    evaluation. What a worker's task and an evaluation on arrival both run;
    `retry_in_worker`: should this one fail, a worker tries again (a worker's own failure
    is not retried: it would fail again; beat evaluates anyway); `claimed`: the first
    evaluation's claim, already made."""
    for _ in range(rounds):
        claim = claimed or evaluation_claim(source_id)
        claimed = None
        try:
            _evaluate(source_id, claim)
        except BaseException:
            if claim.derive:
                _derivation_ask_again(source_id)  # deriving once more is harmless
            if evaluation_finish(source_id) or retry_in_worker:
                _queue(source_id)
            raise
        if not evaluation_finish(source_id):
            return
    _queue(source_id)


def _evaluate(source_id: int, claim: Claim) -> None:
    if claim.derive:
        source = Source.objects.filter(pk=source_id, enabled=True).first()
        if source is None:
            return
        derivation = trading_metrics_catch_up(source=source, budget_seconds=DERIVE_SECONDS)
        source_evaluate(source_id=source_id, source=source, extremes=derivation.extremes)
        return
    # Disabled sources are skipped there too; no need to read the source row first.
    source_evaluate(source_id=source_id, names=claim.names)


def evaluation_claim(source_id: int) -> Claim:
    """Mark the source's evaluation as started; return what it is to do: derive first
    if due, and which names arrived since the last one.

    The "again" mark and the names are cleared before the work: changes arriving during
    it mark the source again, for one more evaluation after this one.
    """
    in_flight, again, derivation, names_key = _keys(source_id)
    client = redis_cache_client()
    if client is not None:
        # One round trip; MULTI/EXEC, so a change arriving meanwhile sees all or nothing.
        with client.pipeline(transaction=True) as pipe:
            pipe.set(cache_key(in_flight), 1, ex=FLAG_SECONDS)
            pipe.delete(cache_key(again))
            pipe.delete(cache_key(derivation))
            pipe.smembers(cache_key(names_key))
            pipe.delete(cache_key(names_key))
            *_, derived, members, _ = pipe.execute()
        return Claim(derive=bool(derived), names=_names_of(list(members)))
    cache.set(in_flight, 1, timeout=FLAG_SECONDS)
    cache.delete(again)
    return Claim(derive=bool(cache.delete(derivation)), names=None)


def evaluation_finish(source_id: int) -> bool:
    """Mark the source's evaluation as ended; True when changes arrived meanwhile (the
    source stays in flight and the caller queues the next evaluation)."""
    in_flight, again, *_ = _keys(source_id)
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


def _evaluate_here(source_id: int, started: Started) -> bool:
    """Evaluate the source in this process, now (should that fail, a worker tries
    again); False if this process's `arrival_budget` is spent: the caller then queues it.
    `started`: its claim, if made when it started."""
    budget = arrival_budget()
    if started is True and not budget.allows():
        return False
    began = time.perf_counter()
    try:
        evaluation_run(
            source_id, retry_in_worker=True, claimed=started if isinstance(started, Claim) else None
        )
    except Exception:
        # The batch is stored and its evaluation queued for a worker; the answer is 202.
        logger.exception("evaluating source %s on arrival failed; queued instead", source_id)
    finally:
        budget.spend(time.perf_counter() - began)
    return True
