"""What the client knows about itself: counters for `stats()` and rate-limited logging."""

from __future__ import annotations

import logging
import threading
import time
from typing import TypedDict

logger = logging.getLogger("tradewatch_client")


class Stats(TypedDict):
    """A snapshot of the client's counters; every count is of items (not requests)."""

    queued: int  # accepted into the queue since the client started (or since a fork)
    pending: int  # in the queue or in a batch not settled yet
    sent: int  # acknowledged by the server (2xx)
    duplicates: int  # of those, trades the server already had
    coalesced: int  # heartbeats superseded by a newer one before they were sent
    dropped_queue_full: int  # oldest items pushed out of a full queue
    dropped_invalid: int  # refused client-side: NaN, wrong type, bad timestamp, ...
    dropped_rejected: int  # refused by the server for good (400, 401, other 4xx)
    dropped_failed: int  # given up: repeated 5xx, or still unsent when close() timed out
    dropped_closed: int  # calls made after close() or while the client is disabled
    retries: int  # requests repeated after a 5xx, 429, timeout or connection failure
    internal_errors: int  # bugs caught before they could reach the caller
    last_error: str | None  # the latest delivery problem, for a human


class Counters:
    """Mutable counters behind `Stats`.

    The sender thread is the only writer of the delivery counters, so they need no
    lock; `dropped_closed` and `internal_errors` are written by calling threads and
    are guarded by the client's lock (on rare paths only).
    """

    __slots__ = (
        "coalesced",
        "dropped_closed",
        "dropped_failed",
        "dropped_invalid",
        "dropped_rejected",
        "duplicates",
        "internal_errors",
        "last_error",
        "retries",
        "sent",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.duplicates = 0
        self.coalesced = 0
        self.dropped_invalid = 0
        self.dropped_rejected = 0
        self.dropped_failed = 0
        self.dropped_closed = 0
        self.retries = 0
        self.internal_errors = 0
        self.last_error: str | None = None

    def settled(self) -> int:
        """Items taken from the queue whose fate is decided (delivered or dropped)."""
        return (
            self.sent
            + self.coalesced
            + self.dropped_invalid
            + self.dropped_rejected
            + self.dropped_failed
        )


class RateLimitedLog:
    """Log each kind of problem at most once per interval, telling how many were held back.

    A trading system with the server down for an hour would otherwise write a line per
    retry; this keeps the first one and then one per interval with a count.
    """

    def __init__(self, interval: float, log: logging.Logger = logger) -> None:
        self._interval = interval
        self._log = log
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def __call__(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool = False
    ) -> None:
        """Log `message % args` unless a `kind` message was logged less than interval ago."""
        if not self._log.isEnabledFor(level):
            return
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held_back[kind] = self._held_back.get(kind, 0) + 1
                return
            self._last[kind] = now
            held_back = self._held_back.pop(kind, 0)
        if held_back:
            message += " (%d similar messages held back)"
            args = (*args, held_back)
        self._log.log(level, message, *args, exc_info=exc_info)
