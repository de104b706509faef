"""The share of a process's time that evaluations on arrival may take."""

from __future__ import annotations

import threading

from alerts.arrival_budget import ArrivalBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_allows_evaluations_until_the_saved_up_time_is_spent() -> None:
    clock = Clock()
    budget = ArrivalBudget(share=0.25, burst_seconds=0.1, clock=clock)

    assert budget.allows()
    budget.spend(0.06)
    assert budget.allows()
    budget.spend(0.06)  # overdrawn: the evaluation that was allowed still counts

    assert not budget.allows()


def test_it_refills_at_its_share_of_the_time_passing() -> None:
    clock = Clock()
    budget = ArrivalBudget(share=0.25, burst_seconds=0.1, clock=clock)
    budget.spend(0.12)  # 0.02 s overdrawn

    clock.now += 0.079  # 0.01975 s back: still overdrawn
    assert not budget.allows()
    clock.now += 0.002
    assert budget.allows()


def test_it_saves_up_no_more_than_its_burst() -> None:
    clock = Clock()
    budget = ArrivalBudget(share=0.25, burst_seconds=0.1, clock=clock)

    clock.now += 3600
    budget.spend(0.1)

    assert not budget.allows()


def test_a_steady_load_within_the_share_is_always_allowed() -> None:
    clock = Clock()
    budget = ArrivalBudget(share=0.25, burst_seconds=0.1, clock=clock)

    # One 20 ms evaluation every 100 ms: 20 % of the time.
    for _ in range(1000):
        assert budget.allows()
        budget.spend(0.02)
        clock.now += 0.1


def test_threads_spending_at_once_lose_no_spending() -> None:
    clock = Clock()
    budget = ArrivalBudget(share=0.0, burst_seconds=100.0, clock=clock)

    def spend() -> None:
        for _ in range(10_000):
            budget.spend(0.001)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    budget.spend(59.999)  # 100 - 40 spent by the threads - 59.999 leaves 0.001
    assert budget.allows()
    budget.spend(0.002)
    assert not budget.allows()
