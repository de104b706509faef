"""The bounded queue between the trading loop and the sender thread."""

from __future__ import annotations

import itertools
from collections import deque

from .payloads import Item


class Buffer:
    """A bounded FIFO: lock-free appends from any thread, one consumer, oldest dropped when full.

    `deque(maxlen=...)` does the dropping inside one C call, so a full queue costs the
    caller nothing extra. Drops are not reported by the deque; they are derived:
    dropped = appended - taken - still queued. Each side updates its counter in the order
    that can only make that figure briefly too low, never too high, and `dropped()` never
    goes down, so a reader sees a monotone count that is exact whenever no call is in
    flight.
    """

    __slots__ = ("_appended", "_dropped", "_items", "_taken", "maxlen")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._items: deque[Item] = deque(maxlen=maxlen)
        # next() on itertools.count is one C call, atomic under the GIL: calling threads
        # can count without a lock, where `self.n += 1` would lose increments.
        self._appended = itertools.count()
        self._taken = 0
        self._dropped = 0

    def put(self, item: Item) -> None:
        """Append one item (any thread); the oldest item is dropped if the queue is full."""
        self._items.append(item)
        next(self._appended)

    def take(self) -> Item:
        """Remove and return the oldest item (sender thread only); IndexError when empty."""
        # Counted before the pop so a concurrent reader under-, never over-counts drops.
        self._taken += 1
        try:
            return self._items.popleft()
        except IndexError:
            self._taken -= 1
            raise

    def __len__(self) -> int:
        return len(self._items)

    def appended(self) -> int:
        """How many items were ever put."""
        # itertools.count cannot be read without advancing it; its repr, `count(N)`, is
        # the one stable way to read N (its pickling support is deprecated).
        return int(repr(self._appended)[6:-1])

    def taken(self) -> int:
        """How many items the consumer took."""
        return self._taken

    def dropped(self) -> int:
        """How many items were pushed out of the full queue."""
        dropped = self.appended() - self._taken - len(self._items)
        if dropped > self._dropped:
            self._dropped = dropped
        return self._dropped

    def reset(self) -> None:
        """Forget everything (in a forked child, whose parent still owns these items)."""
        self._items.clear()
        self._appended = itertools.count()
        self._taken = 0
        self._dropped = 0
