"""Tradewatch's own ingestion counters, exported at /metrics (see metrics.prometheus).

The web server runs several processes, each with its own memory: a plain counter
would show whichever worker answered the scrape. When `PROMETHEUS_MULTIPROC_DIR` is
set (production, by monitoring_site/webserver.py), prometheus_client keeps every value in a
memory-mapped file per process in that folder and `own_metrics()` adds them up.
Without it (tests, runserver, the embedded mode's single process) values stay in
this process. prometheus_client picks its storage when it is first imported, so the
variable must be set before the server starts, and the folder emptied then.

Imports nothing of Django, so it can be used (and tested) in any process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR: Final[str | None] = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

# `*_created` timestamps exist only in-process (multiprocess mode drops them): leave
# them out so the exposition is the same in both modes.
disable_created_metrics()

#: The in-process registry of these metrics (not prometheus_client's global one, so
#: /metrics shows exactly what Tradewatch defines).
REGISTRY: Final = CollectorRegistry(auto_describe=True)

INGESTED_ITEMS: Final = Counter(
    "tradewatch_ingested_items",
    "Items (samples, trades, events, heartbeats) accepted by an ingestion endpoint.",
    ["endpoint"],
    registry=REGISTRY,
)
REJECTED_BATCHES: Final = Counter(
    "tradewatch_rejected_batches",
    "Batches an ingestion endpoint refused, by reason (invalid, too_large, throttled...).",
    ["endpoint", "reason"],
    registry=REGISTRY,
)
INGEST_SECONDS: Final = Histogram(
    "tradewatch_ingest_duration_seconds",
    "Time an ingestion endpoint took to validate and store one batch.",
    ["endpoint"],
    # A small batch is stored in ~1 ms; past 2 s a trading system's client times out.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
    registry=REGISTRY,
)


def record_ingested(*, endpoint: str, items: int) -> None:
    """Count `items` accepted by `endpoint` (metrics, trades, heartbeat, events)."""
    INGESTED_ITEMS.labels(endpoint=endpoint).inc(items)


def record_rejected(*, endpoint: str, reason: str) -> None:
    """Count one batch rejected by `endpoint` for `reason` (invalid, too_large, ...)."""
    REJECTED_BATCHES.labels(endpoint=endpoint, reason=reason).inc()


def observe_ingest_seconds(*, endpoint: str, seconds: float) -> None:
    """Record how long `endpoint` took to validate and store one batch."""
    INGEST_SECONDS.labels(endpoint=endpoint).observe(seconds)


def own_metrics() -> Iterable[Metric]:
    """These metrics as one scrape should show them: summed over every worker process."""
    if MULTIPROCESS_DIR is None:
        return REGISTRY.collect()
    collector = MultiProcessCollector(None, path=MULTIPROCESS_DIR)
    summed: Iterable[Metric] = collector.collect()
    return summed
