"""A replayed series over the period in buckets: what a backtest's chart draws.

Pure: the series' points in, the lowest and highest value of each bucket out (for
events, and for the clocks and signals made of them, how many fell in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .clocks import Age
from .data import moment
from .signals import RejectRate
from .windows import Occurrences, SeriesJudge


@dataclass
class Chart:
    """One series' values over the period, in buckets (time, lowest, highest)."""

    source_id: int
    labels: dict[str, str]
    buckets: list[tuple[datetime, float, float]]
    what: str  # "values" of the metric, or "events" per bucket


def chart_of(judge: SeriesJudge, source_id: int, start_us: int, end_us: int, buckets: int) -> Chart:
    """The series `judge` judges over [start_us, end_us] in `buckets` slices."""
    w = judge.windows
    events = isinstance(judge, (Occurrences, Age, RejectRate))
    span = max(1, end_us - start_us)
    width = -(-span // buckets)
    edges = start_us + width * np.arange(buckets + 1, dtype=np.int64)
    bounds = np.searchsorted(w.ts, edges, side="right")
    rows: list[tuple[datetime, float, float]] = []
    filled = np.flatnonzero(bounds[1:] > bounds[:-1])
    if len(filled):
        starts = bounds[filled]
        if events:
            low = high = (bounds[filled + 1] - starts).astype(np.float64)
        else:
            stop = int(bounds[filled[-1] + 1])
            values = w.values[:stop]
            low = np.minimum.reduceat(values, starts)
            high = np.maximum.reduceat(values, starts)
        for k, slot in enumerate(filled):
            at = moment(int(edges[slot] + width // 2))
            rows.append((at, float(low[k]), float(high[k])))
    return Chart(source_id, judge.labels, rows, "events" if events else "values")
