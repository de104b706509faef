"""When to restart a crashed process, and when to stop trying: pure decisions, no I/O.

The launcher (`monitoring_site.launcher`) runs web, worker and beat; one of them dying
must not take the others down (a crashed worker would otherwise silence every alert
while web keeps accepting data). It asks a `RestartPolicy` per process what to do after
each crash: restart after a delay that doubles with every recent crash, or give up when
the process crashed `limit` times within `window` seconds (a broken configuration, a
port taken: restarting forever would only hide it).
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Restart:
    """Start the process again after `delay` seconds; `crashes` happened in the window."""

    delay: float
    crashes: int


@dataclass(frozen=True)
class GiveUp:
    """Stop everything: `crashes` crashes within `window` seconds."""

    crashes: int
    window: float


@dataclass
class RestartPolicy:
    """Exponential backoff over the crashes of one process within a sliding window.

    The n-th crash within the window waits `base_delay * 2**(n-1)` seconds (at most
    `max_delay`); the `limit`-th gives up. Crashes older than the window are forgotten,
    so a process that crashes once a day is always restarted after `base_delay`.
    """

    limit: int = 5
    window: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 30.0
    _crashes: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, not {self.limit}")
        if self.window <= 0 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("window must be positive and 0 <= base_delay <= max_delay")

    def crashed(self, now: float) -> Restart | GiveUp:
        """Record a crash at monotonic time `now` and decide what to do about it."""
        self._crashes.append(now)
        while self._crashes and self._crashes[0] <= now - self.window:
            self._crashes.popleft()
        count = len(self._crashes)
        if count >= self.limit:
            return GiveUp(crashes=count, window=self.window)
        delay = min(self.base_delay * 2 ** (count - 1), self.max_delay)
        return Restart(delay=delay, crashes=count)


def describe_exit(returncode: int) -> str:
    """`Popen.returncode` in words: "exit code 3", "killed by signal SIGKILL (9)"."""
    if returncode >= 0:
        return f"exit code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"killed by signal {number}"
    return f"killed by signal {name} ({number})"
