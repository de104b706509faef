"""Per-source request rate limit for ingestion: a sliding window (`metrics.ratelimit`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from metrics import ratelimit
from metrics.authentication import SourcePrincipal

logger = logging.getLogger(__name__)


class SourceIngestThrottle(BaseThrottle):
    """At most TRADEWATCH_INGEST_RATE_PER_MINUTE requests per source in any 60 seconds.

    One atomic step per request (a Redis script in production), shared by every web
    process, so the limit holds however many web processes answer.
    """

    def __init__(self) -> None:
        self.retry_after = 0

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, SourcePrincipal):
            return True
        try:
            decision = ratelimit.hit(
                f"ingest-rate:{principal.source.pk}",
                limit=settings.TRADEWATCH_INGEST_RATE_PER_MINUTE,
                now=time.time(),
            )
        except Exception as exc:
            # The cache is away (a Redis restart): the batch is let in uncounted rather
            # than refused; a monitor that turns data away while it recovers loses it.
            logger.warning("rate limit not checked: the cache is unavailable (%s)", exc)
            return True
        self.retry_after = decision.retry_after
        return decision.allowed

    def wait(self) -> float:
        # Whole seconds, rounded up by `ratelimit`: a request after this many passes.
        return float(self.retry_after)
