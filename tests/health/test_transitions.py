"""Flap damping and the circuit breaker as pure transitions."""

from __future__ import annotations

from health.scoring import Status
from health.transitions import Breaker, BreakerState, Damping, damp, trip

H, D, U, C = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.CRITICAL


def run(observed: list[Status], n: int = 3, m: int = 2, start: Status = H) -> list[Status]:
    state = Damping(start)
    seen = []
    for status in observed:
        state = damp(state, status, failures_to_unhealthy=n, successes_to_recover=m)
        seen.append(state.status)
    return seen


def test_it_turns_unhealthy_only_after_n_failures_in_a_row() -> None:
    assert run([U, U, H, U, U, U]) == [H, H, H, H, H, U]


def test_it_recovers_only_after_m_successes_in_a_row() -> None:
    assert run([U, U, U, H, U, H, H]) == [H, H, U, U, U, U, H]


def test_it_follows_bad_levels_at_once_once_bad() -> None:
    assert run([D, D, D, C, U]) == [H, H, D, C, U]


def test_it_takes_the_first_healthy_result_of_a_new_check() -> None:
    assert run([H], start=Status.UNKNOWN) == [H]
    assert run([U, U, U], start=Status.UNKNOWN) == [Status.UNKNOWN, Status.UNKNOWN, U]


def test_it_opens_the_breaker_after_three_failures_and_closes_on_success() -> None:
    state = BreakerState()
    states = []
    for status in [C, C, D, C, C, C]:
        state = trip(state, status, threshold=3)
        states.append(state.state)
    # DEGRADED is not a failure: it closes the count.
    assert states == [Breaker.CLOSED] * 5 + [Breaker.OPEN]
    half_open = BreakerState(Breaker.HALF_OPEN, 3)
    assert trip(half_open, U, threshold=3).state is Breaker.OPEN
    assert trip(half_open, H, threshold=3) == BreakerState(Breaker.CLOSED, 0)
