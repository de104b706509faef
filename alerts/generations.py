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
import uuid

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def generation_current(key: str, *, what: str) -> object:
    """The token under `key`; with the cache away, one equal to no copy's."""
    try:
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
    transaction.on_commit(lambda: cache.set(key, uuid.uuid4().hex, timeout=None), robust=True)
