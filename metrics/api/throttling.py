"""Per-source request rate limit for ingestion (a fixed one-minute window in the cache)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from metrics.authentication import SourcePrincipal
from metrics.tasks import cache_key, redis_cache_client, redis_script

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Count one request and give the window's total, in one round trip (Django's incr on
# Redis takes two, and a third on the first request of a window).
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class SourceIngestThrottle(BaseThrottle):
    """At most TRADEWATCH_INGEST_RATE_PER_MINUTE requests per source per minute.

    One atomic increment per request (a Redis script in production), shared by every
    web process, so the limit holds however many web processes answer.
    """

    def __init__(self) -> None:
        self.retry_after = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, SourcePrincipal):
            return True
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"ingest-rate:{principal.source.pk}:{window}"
        try:
            count = _count(key)
        except Exception as exc:
            # The cache is away (a Redis restart): the batch is let in uncounted rather
            # than refused; a monitor that turns data away while it recovers loses it.
            logger.warning("rate limit not checked: the cache is unavailable (%s)", exc)
            return True
        if count <= settings.TRADEWATCH_INGEST_RATE_PER_MINUTE:
            return True
        self.retry_after = (window + 1) * WINDOW_SECONDS - now
        return False

    def wait(self) -> float:
        return max(1.0, self.retry_after)


def _count(key: str) -> int:
    """Count one request under `key` and return the window's total."""
    client = redis_cache_client()
    if client is not None:
        return int(redis_script(client, _COUNT)(keys=[cache_key(key)], args=[WINDOW_SECONDS * 2]))
    try:
        return int(cache.incr(key))
    except ValueError:  # first request of the window (or another process's race)
        return 1 if cache.add(key, 1, timeout=WINDOW_SECONDS * 2) else int(cache.incr(key))
