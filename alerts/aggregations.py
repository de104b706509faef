"""Points in time and how the values in a window become one value.

Pure: no Django, no I/O, no clock. `alerts.engine` judges THRESHOLD rules on these
aggregates; the database computes the same ones for the rules it can (see
`alerts.engine.evaluate_aggregate`).

* Window: a point is in it when now - window < ts <= now.
* Aggregations: last (newest point), avg, min, max, sum, count, rate, p95, p99. Sums
  use math.fsum (exactly rounded, so order never matters; exact rationals when fsum
  overflows midway). sum and count of no points are 0; the others are undefined.
  - rate: per-second increase of a counter from the first to the last point in the
    window: the increases between consecutive points, a decrease counting as a reset
    to 0 (it contributes the new value, as in Prometheus), over the seconds between
    first and last point. No extrapolation to the window edges (unlike Prometheus).
    Undefined with fewer than 2 points or no time between them.
  - p95 / p99: nearest rank, the value at 1-based rank ceil(p/100 x n) of the sorted
    values: always an observed value; below 20 (p95) / 100 (p99) values, the maximum.
* Points with equal timestamps are ordered by value, so no result depends on input
  order. Never NaN or +-inf: points are checked (ValueError); a value that overflows
  is undefined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from itertools import islice
from types import MappingProxyType
from typing import Final

from .thresholds import enum_member, finite_number


class Aggregation(StrEnum):
    """How the values in a window become one value (THRESHOLD rules)."""

    LAST = "last"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    RATE = "rate"
    P95 = "p95"
    P99 = "p99"


@dataclass(frozen=True, slots=True)
class Point:
    """One value at one moment: a metric sample, a heartbeat or an event occurrence."""

    ts: datetime
    value: float

    def __post_init__(self) -> None:
        # Inlined checks: points are built by the thousand for every evaluation round.
        if self.ts.tzinfo is None:
            raise ValueError(f"Point.ts must be timezone-aware, got {self.ts!r}")
        if self.value.__class__ is not float or not math.isfinite(self.value):
            object.__setattr__(self, "value", finite_number("Point.value", self.value))


ValueAggregator = Callable[[list[float]], float | None]
PointAggregator = Callable[[list[Point]], float | None]


def finite(value: float) -> float | None:
    """`value`, or None (undefined) when arithmetic overflowed to inf or NaN."""
    return value if math.isfinite(value) else None


def time_order(point: Point) -> tuple[datetime, float]:
    """The sort key of points: time, then value (equal timestamps in a fixed order)."""
    return point.ts, point.value


def newest(points: Iterable[Point]) -> Point:
    return max(points, key=time_order)


def _exact_sum(values: list[float]) -> Fraction:
    return sum(map(Fraction, values), Fraction(0))


def _sum(values: list[float]) -> float | None:
    try:
        return math.fsum(values)
    except OverflowError:  # fsum's partial sums overflowed (an order-dependent accident)
        try:
            return float(_exact_sum(values))
        except OverflowError:
            return None


def average(values: list[float]) -> float | None:
    if not values:
        return None
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # the mean of huge values is finite where their sum is not
        return float(_exact_sum(values) / len(values))


def _nearest_rank(percent: int) -> ValueAggregator:
    def percentile(values: list[float]) -> float | None:
        if not values:
            return None
        rank = -(-percent * len(values) // 100)  # ceil(percent x n / 100), 1-based
        return sorted(values)[rank - 1]

    return percentile


def _last(points: list[Point]) -> float | None:
    return newest(points).value if points else None


def _rate(points: list[Point]) -> float | None:
    if len(points) < 2:
        return None
    ordered = sorted(points, key=time_order)
    seconds = (ordered[-1].ts - ordered[0].ts).total_seconds()
    if seconds <= 0:
        return None
    increase = 0.0
    previous = ordered[0].value
    for point in islice(ordered, 1, None):
        current = point.value
        increase += current - previous if current >= previous else current
        previous = current
    return finite(increase / seconds)


# Most aggregations need the values only; `last` and `rate` need their times too.
ON_VALUES: Final[Mapping[Aggregation, ValueAggregator]] = MappingProxyType(
    {
        Aggregation.AVG: average,
        Aggregation.MIN: lambda values: min(values, default=None),
        Aggregation.MAX: lambda values: max(values, default=None),
        Aggregation.SUM: _sum,
        Aggregation.COUNT: lambda values: float(len(values)),
        Aggregation.P95: _nearest_rank(95),
        Aggregation.P99: _nearest_rank(99),
    }
)
ON_POINTS: Final[Mapping[Aggregation, PointAggregator]] = MappingProxyType(
    {Aggregation.LAST: _last, Aggregation.RATE: _rate}
)


def aggregate(
    aggregation: Aggregation, points: Iterable[Point], *, now: datetime, window: timedelta
) -> float | None:
    """Return `aggregation` of the values of the points with now - window < ts <= now.

    None when undefined: no points (sum and count of none are 0), a rate from fewer
    than 2 points or no elapsed time, a sum that overflows.
    """
    aggregation = enum_member("aggregation", Aggregation, aggregation)
    start = now - window
    if aggregation in ON_POINTS:
        return ON_POINTS[aggregation]([p for p in points if start < p.ts <= now])
    return ON_VALUES[aggregation]([p.value for p in points if start < p.ts <= now])
