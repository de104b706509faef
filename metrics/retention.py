"""Retention of metrics: samples, trades and events past their age, deleted in chunks
(`core.chunks`), with stale idempotency records and derivation checkpoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from core.chunks import Progress, delete_older_than

from .models import DerivedCheckpoint, Event, IdempotentRequest, MetricSample, Trade


def samples_prune(
    *, now: datetime | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """Delete samples, trades and events past the metric retention, stale idempotency
    records and derivation checkpoints; return how many rows of each went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS)
    return {
        "samples": delete_older_than(MetricSample, "ts", cutoff, progress=progress),
        "trades": delete_older_than(Trade, "ts", cutoff, progress=progress),
        "events": delete_older_than(Event, "ts", cutoff, progress=progress),
        "idempotency_records": delete_older_than(
            IdempotentRequest,
            "created_at",
            now - timedelta(hours=settings.TRADEWATCH_IDEMPOTENCY_HOURS),
            progress=progress,
        ),
        # A day past the samples: a late sample at the retention's edge still finds a
        # checkpoint before it to fold again from.
        "derived_checkpoints": delete_older_than(
            DerivedCheckpoint, "at", cutoff - timedelta(days=1), progress=progress
        ),
    }
