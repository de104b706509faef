"""Flap damping and the circuit breaker of one check: pure state transitions.

The runner keeps the state on the check's row and calls these with each probe result;
nothing here reads a clock or a database, so every transition is tested in isolation.

Flap damping: the check's status only turns unhealthy after `failures_to_unhealthy`
results in a row that are not HEALTHY, and only recovers after `successes_to_recover`
HEALTHY results in a row. Once not healthy, the status follows the probe from one bad
level to another at once (DEGRADED to CRITICAL needs no further confirmation). A check
that never ran (UNKNOWN) becomes HEALTHY on its first healthy result.

Circuit breaker: `breaker_threshold` hard failures in a row (UNHEALTHY or CRITICAL)
open it: the target counts as down and is probed only every `breaker_retry`. The first
probe after that wait is half-open: a result that is not a hard failure closes the
breaker, another failure opens it for another wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .scoring import Status


class Breaker(StrEnum):
    """A check's circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Damping:
    """The damped status and the streaks that move it."""

    status: Status
    failures: int = 0
    successes: int = 0


def damp(
    state: Damping, observed: Status, *, failures_to_unhealthy: int, successes_to_recover: int
) -> Damping:
    """The damped state after one more probe result `observed`."""
    if observed is Status.UNKNOWN:
        return state
    if observed is Status.HEALTHY:
        successes = state.successes + 1
        recovered = state.status in (Status.UNKNOWN, Status.HEALTHY) or (
            successes >= successes_to_recover
        )
        return Damping(Status.HEALTHY if recovered else state.status, 0, successes)
    failures = state.failures + 1
    confirmed = state.status not in (Status.UNKNOWN, Status.HEALTHY) or (
        failures >= failures_to_unhealthy
    )
    return Damping(observed if confirmed else state.status, failures, 0)


@dataclass(frozen=True)
class BreakerState:
    """The breaker and the hard failures in a row that trip it."""

    state: Breaker = Breaker.CLOSED
    failures: int = 0


def trip(state: BreakerState, observed: Status, *, threshold: int) -> BreakerState:
    """The breaker after one more probe result `observed`."""
    if not observed.is_failure:
        return BreakerState(Breaker.CLOSED, 0)
    failures = state.failures + 1
    if state.state is not Breaker.CLOSED or failures >= threshold:
        # A failed half-open probe opens the breaker again for another full wait.
        return BreakerState(Breaker.OPEN, failures)
    return BreakerState(Breaker.CLOSED, failures)
