"""Per-process copies of configuration, kept until an edit anywhere is committed.

Rules and routing policies are read for every evaluation and every notifying transition,
often inside a request waiting for its answer. Each process keeps a copy tagged with the
generation token the shared cache held when the copy was read. An edit writes a fresh
token once its transaction commits (earlier, another process could read the old rows
under the new token and keep them), so every process sees the edit at its next read.
With the cache away no copy is trusted: the caller reads afresh each time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from django.core.cache import cache
from django.db import transaction

from .redis_cache import cache_key, redis_cache_client

logger = logging.getLogger(__name__)

T = TypeVar("T")


# Every generation key this process knows (KeptCopy's and `generation_known`'s).
_known: set[str] = set()
_read_once = threading.local()


def generation_known(key: str) -> str:
    """Declare a generation key read outside `KeptCopy` (so `generations_read_once` reads
    it too); returns it."""
    _known.add(key)
    return key


@contextmanager
def generations_read_once() -> Iterator[None]:
    """Within the block (one ingestion request), read every known generation token once,
    all in one round trip, instead of one GET per kept copy consulted.

    An ingestion request checks the API keys', the rules' (twice), the trading
    controls' and the policies' generations: five round trips to the cache, the most of
    any of its steps. A token read at the start is older than the rows read after it, so
    a copy is never taken for newer than it is; an edit committed by this thread during
    the block drops its token (see `generation_bump`), so it is read again.
    """
    if getattr(_read_once, "tokens", None) is not None:  # already inside one
        yield
        return
    keys = sorted(_known)
    try:
        client = redis_cache_client()
        tokens = (
            dict(zip(keys, client.mget([cache_key(key) for key in keys]), strict=True))
            if client is not None and keys
            else None
        )
    except Exception:  # the cache is away: each read goes its own way (and says so)
        tokens = None
    _read_once.tokens = tokens
    try:
        yield
    finally:
        _read_once.tokens = None


def _read_once_forget(key: str) -> None:
    tokens = getattr(_read_once, "tokens", None)
    if tokens is not None:
        tokens.pop(key, None)


def generation_current(key: str, *, what: str) -> object:
    """The token under `key`; with the cache away, one equal to no copy's."""
    tokens = getattr(_read_once, "tokens", None)
    if tokens is not None and key in tokens:
        return tokens[key]
    try:
        client = redis_cache_client()
        if client is not None:
            # One plain GET of the stored bytes (compared, never decoded): API keys'
            # generation is read on every request, and the cache's own path costs
            # several times the round trip.
            return client.get(cache_key(key))
        return cache.get(key)
    except Exception as exc:
        logger.warning("%s read afresh: the cache is unavailable (%s)", what, exc)
        return object()


def generation_bump(key: str) -> None:
    """Write a fresh token under `key` when the current transaction commits (now if none).

    A fresh token rather than a counter: a cleared cache can never bring an old
    generation back to life. Robust: the edit is saved by then, and with the cache away
    every process reads afresh until it is back (a restarted cache holds no token, which
    also has them read afresh).
    """

    def bump() -> None:
        _read_once_forget(key)
        cache.set(key, uuid.uuid4().hex, timeout=None)

    transaction.on_commit(bump, robust=True)


class KeptCopy(Generic[T]):
    """One process's copy of some configuration, read again once an edit is committed.

    `ttl_seconds` bounds how long a change made straight in the database, which bumps
    no generation, can go unseen. Several copies may share a generation (the rules
    evaluation reads, the health rules, the metric names rules watch): an edit drops
    them all.
    """

    # Every copy by its generation key, so an edit in this process reaches all of them.
    _sharing: ClassVar[dict[str, list[KeptCopy[Any]]]] = {}

    def __init__(self, key: str, *, what: str, ttl_seconds: float) -> None:
        self.key = key
        self.what = what
        self.ttl_seconds = ttl_seconds
        self._kept: tuple[float, object, T] | None = None
        KeptCopy._sharing.setdefault(key, []).append(self)
        generation_known(key)

    def get(self, read: Callable[[], T]) -> T:
        """The kept copy while it is current; else what `read` returns, kept."""
        # Read before the rows: an edit committed meanwhile then shows as a new token.
        generation = generation_current(self.key, what=self.what)
        kept = self._kept
        if (
            kept is not None
            and kept[1] == generation
            and time.monotonic() - kept[0] < self.ttl_seconds
        ):
            return kept[2]
        value = read()
        self._kept = (time.monotonic(), generation, value)
        return value

    def forget(self) -> None:
        """Have this process read afresh next time (tests, or its own edit)."""
        self._kept = None

    def changed(self) -> None:
        """An edit: this process reads afresh at once, every process once it commits."""
        for copy in KeptCopy._sharing[self.key]:
            copy.forget()
        generation_bump(self.key)
