"""Tradewatch's own ingestion counters, exported at /metrics (see metrics.prometheus)."""

from __future__ import annotations


def record_ingested(*, endpoint: str, items: int) -> None:
    """Count `items` accepted by `endpoint` (metrics, trades, heartbeat, events)."""


def record_rejected(*, endpoint: str, reason: str) -> None:
    """Count one batch rejected by `endpoint` for `reason` (invalid, too_large, ...)."""


def observe_ingest_seconds(*, endpoint: str, seconds: float) -> None:
    """Record how long `endpoint` took to validate and store one batch."""
