"""How much of a web process's time evaluations on arrival may take.

Evaluating the first batch after a quiet spell in its own request saves the hop to a
worker, but the request pays for it. With many sources each sending now and then,
every batch would be such a first one, and under load the web processes would spend
their time evaluating while batches wait: ingestion would slow down, where a worker
falls behind and merges evaluations instead. So each process lets evaluations on
arrival take at most a share of its time (a token bucket measured in seconds); beyond
it, evaluations go to a worker as they would without evaluation on arrival.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ArrivalBudget:
    """A share of wall-clock time, saved up to `burst_seconds`, that evaluations spend."""

    def __init__(
        self,
        *,
        share: float,
        burst_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.share = share
        self.burst_seconds = burst_seconds
        self._clock = clock
        self._seconds = burst_seconds
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._seconds = min(self.burst_seconds, self._seconds + (now - self._at) * self.share)
        self._at = now

    def allows(self) -> bool:
        """Whether an evaluation may run now (some time is left, even a little)."""
        with self._lock:
            self._refill(self._clock())
            return self._seconds > 0

    def spend(self, seconds: float) -> None:
        """Count an evaluation that took `seconds` (the budget may go below zero)."""
        with self._lock:
            self._refill(self._clock())
            self._seconds -= seconds
