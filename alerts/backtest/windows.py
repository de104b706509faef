"""What one series shows at each evaluation instant, for a whole period at once.

The live engine is asked at each instant (`judging.Subject.judge`), and so is the
backtest, with the same `Subject` built from the same points, window and aggregation.
What numpy adds is the skipping: for every instant at once it works out how many
points the window holds and whether any threshold *could* trigger there (exactly for
counts, order statistics, last values, changes and ages; within a proven rounding bound
for sums, averages and rates, where it errs towards looking). Instants where nothing
can trigger and no alert is open are not judged one by one: the engine would answer
"ok" (or no data) and the lifecycle would do nothing. Anomaly rules are judged at every
instant with enough points (no cheap bound on a z-score).

`approx` gives the value itself at every instant (exactly, or with its error bound),
which the quiet stretches of an open alert need (`stretches`); percentiles and anomaly
scores have none, so their open alerts are judged instant by instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from alerts import engine
from alerts.aggregations import ON_VALUES, Aggregation
from alerts.judging import Subject
from alerts.thresholds import Comparison

from .data import Floats, Micros, moment

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

_EPS: Final = np.finfo(np.float64).eps
_ORDER_STATISTICS: Final = {Aggregation.MIN, Aggregation.MAX, Aggregation.P95, Aggregation.P99}
_NUMPY_COMPARE: Final[dict[Comparison, Callable[[Floats, float], Mask]]] = {
    Comparison.GT: np.greater,
    Comparison.GTE: np.greater_equal,
    Comparison.LT: np.less,
    Comparison.LTE: np.less_equal,
    Comparison.EQ: np.equal,
    Comparison.NE: np.not_equal,
}


def _exact_triggers(values: Floats, thresholds: Sequence[engine.Threshold]) -> Mask:
    """Where some threshold's comparison holds (values computed as the engine does)."""
    mask = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        for threshold in thresholds:
            mask |= _NUMPY_COMPARE[threshold.comparison](values, threshold.value)
    return mask & np.isfinite(values)


def _near_triggers(values: Floats, error: Floats, thresholds: Sequence[engine.Threshold]) -> Mask:
    """Where some threshold could hold, `values` being off by at most `error`."""
    mask = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        for threshold in thresholds:
            bound, comparison = threshold.value, threshold.comparison
            if comparison in (Comparison.GT, Comparison.GTE):
                mask |= values + error >= bound
            elif comparison in (Comparison.LT, Comparison.LTE):
                mask |= values - error <= bound
            elif comparison == Comparison.EQ:
                mask |= np.abs(values - bound) <= error
            else:
                mask |= True
    return mask | ~np.isfinite(values)


@dataclass
class Windows:
    """One series' points and, per evaluation instant, the window's [lo, hi) slice."""

    labels: dict[str, str]
    labels_key: str
    ts: Micros
    values: Floats
    times: Micros
    lo: Ints
    hi: Ints
    # From which instant on the series exists (its first sample).
    since: int

    @property
    def counts(self) -> Ints:
        return self.hi - self.lo

    def values_list(self, start: int, stop: int) -> list[float]:
        values: list[float] = self.values[start:stop].tolist()
        return values

    def points(self, start: int, stop: int) -> list[engine.Point]:
        return [
            engine.Point(moment(int(t)), float(v))
            for t, v in zip(self.ts[start:stop], self.values[start:stop], strict=True)
        ]


class SeriesJudge:
    """How one rule judges one series over the instants of a period."""

    def __init__(self, spec_kind: engine.RuleKind, windows: Windows, *, min_samples: int) -> None:
        self.kind = spec_kind
        self.windows = windows
        self.min_samples = min_samples

    @property
    def labels(self) -> dict[str, str]:
        return self.windows.labels

    @property
    def labels_key(self) -> str:
        return self.windows.labels_key

    def exists(self) -> Mask:
        return self.windows.times >= self.windows.since

    def no_data(self) -> Mask:
        empty: Mask = self.windows.counts == 0
        return empty

    def candidates(self, spec: engine.RuleSpec) -> Mask:
        """Instants where some threshold of `spec` could trigger (a superset)."""
        found = self.approx()
        assert found is not None
        values, error = found
        return _near_triggers(values, error, spec.thresholds) & np.isfinite(values) & self.enough()

    def approx(self) -> tuple[Floats, Floats] | None:
        """The value the engine judges at each instant (NaN: undefined) and how far off it
        may be; None where that has no cheap bound (stretches are then judged one by
        one). Computed once."""
        if not hasattr(self, "_approximation"):
            self._approximation = self._approx()
        return self._approximation

    def _approx(self) -> tuple[Floats, Floats] | None:
        return None

    def subject(self, index: int) -> Subject:
        """What the live engine would be handed at instant `index`."""
        raise NotImplementedError

    def enough(self) -> Mask:
        """Where the window holds enough points for the engine to judge (else it says
        no data, or insufficient data)."""
        return self.windows.counts >= max(1, self.min_samples)


class LastValue(SeriesJudge):
    """THRESHOLD on the newest value: the series' latest sample, judged in its window."""

    def __init__(self, windows: Windows, *, window: int, min_samples: int) -> None:
        super().__init__(engine.RuleKind.THRESHOLD, windows, min_samples=min_samples)
        w = windows
        newest = w.hi - 1
        has = newest >= 0
        safe = np.where(has, newest, 0)
        self.newest = newest
        self.value = np.where(has, w.values[safe] if len(w.values) else 0.0, np.nan)
        fresh = has & (w.ts[safe] > w.times - window) if len(w.ts) else has
        # The window holds the one point live evaluation passes, or none.
        w.lo = np.where(fresh, newest, w.hi)

    def _approx(self) -> tuple[Floats, Floats]:
        return self.value, np.zeros(len(self.value))

    def subject(self, index: int) -> Subject:
        w, newest = self.windows, int(self.newest[index])
        points = w.points(newest, newest + 1) if newest >= 0 else []
        return Subject(w.labels, w.labels_key, points)


class Aggregated(SeriesJudge):
    """THRESHOLD on a window aggregate the live engine has the database compute (avg,
    min, max, sum, count, p95, p99): judged with `engine.evaluate_aggregate` on the
    aggregate the engine's own aggregator computes."""

    def __init__(self, windows: Windows, *, aggregation: Aggregation, min_samples: int) -> None:
        super().__init__(engine.RuleKind.THRESHOLD, windows, min_samples=min_samples)
        self.aggregation = aggregation
        self.aggregator = ON_VALUES[aggregation]

    def candidates(self, spec: engine.RuleSpec) -> Mask:
        if self.aggregation in _ORDER_STATISTICS:
            return self._order_statistic(spec.thresholds) & self.enough()
        return super().candidates(spec)

    def _approx(self) -> tuple[Floats, Floats] | None:
        w, n = self.windows, self.windows.counts
        if self.aggregation == Aggregation.COUNT:
            return n.astype(np.float64), np.zeros(len(n))
        if self.aggregation in (Aggregation.MIN, Aggregation.MAX):
            pick = np.minimum if self.aggregation == Aggregation.MIN else np.maximum
            return sliding_extreme(w.values, w.lo, w.hi, pick), np.zeros(len(n))
        if self.aggregation in _ORDER_STATISTICS:
            return None
        # sum, avg: prefix sums, within their rounding bound. Recursive summation errs by
        # at most (k - 1) eps sum|x| after k terms; the two prefixes and the
        # subtraction, generously.
        total = np.concatenate(([0.0], np.cumsum(w.values)))
        magnitude = np.concatenate(([0.0], np.cumsum(np.abs(w.values))))
        window_sum = total[w.hi] - total[w.lo]
        error = 4 * _EPS * (len(w.values) + 2) * magnitude[w.hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.aggregation == Aggregation.AVG:
                value = np.where(n > 0, window_sum / np.maximum(n, 1), np.nan)
                return value, error / np.maximum(n, 1)
        return np.where(n > 0, window_sum, np.nan), error

    def _order_statistic(self, thresholds: Sequence[engine.Threshold]) -> Mask:
        """Exact: the r-th smallest of n values compares with T as counts of values on
        each side of T say (the value at rank r exceeds T iff at least n - r + 1 do)."""
        w, n = self.windows, self.windows.counts
        if self.aggregation == Aggregation.MIN:
            rank = np.ones_like(n)
        elif self.aggregation == Aggregation.MAX:
            rank = n
        else:
            percent = 95 if self.aggregation == Aggregation.P95 else 99
            rank = -(-percent * n // 100)
        mask = np.zeros(len(n), dtype=bool)

        def count(holds: Mask) -> Ints:
            prefix = np.concatenate(([0], np.cumsum(holds, dtype=np.int64)))
            return prefix[w.hi] - prefix[w.lo]

        for threshold in thresholds:
            bound, comparison = threshold.value, threshold.comparison
            if comparison == Comparison.GT:
                mask |= count(w.values > bound) >= n - rank + 1
            elif comparison == Comparison.GTE:
                mask |= count(w.values >= bound) >= n - rank + 1
            elif comparison == Comparison.LT:
                mask |= count(w.values < bound) >= rank
            elif comparison == Comparison.LTE:
                mask |= count(w.values <= bound) >= rank
            else:  # == and != : rare on order statistics; judge wherever there is data
                mask |= n > 0
        return mask

    def subject(self, index: int) -> Subject:
        w = self.windows
        lo, hi = int(w.lo[index]), int(w.hi[index])
        value = self.aggregator(w.values_list(lo, hi)) if hi > lo else None
        return Subject(w.labels, w.labels_key, [], (value, hi - lo))


class Rate(SeriesJudge):
    """THRESHOLD on the per-second rate of a counter: judged on the window's points."""

    def __init__(self, windows: Windows, *, min_samples: int) -> None:
        super().__init__(engine.RuleKind.THRESHOLD, windows, min_samples=min_samples)

    def _approx(self) -> tuple[Floats, Floats]:
        w = self.windows
        values = w.values
        if not len(values):
            return np.full(len(w.times), np.nan), np.zeros(len(w.times))
        previous = np.concatenate(([0.0], values[:-1]))
        steps = np.where(values >= previous, values - previous, values)
        prefix = np.concatenate(([0.0], np.cumsum(steps)))
        magnitude = np.concatenate(([0.0], np.cumsum(np.abs(steps) + np.abs(values))))
        last = np.maximum(w.hi - 1, 0)
        first = np.minimum(w.lo, len(values) - 1)
        increase = prefix[last + 1] - prefix[first + 1]
        seconds = (w.ts[last] - w.ts[first]) / 1e6
        error = 4 * _EPS * (len(values) + 2) * magnitude[last + 1]
        defined = ((w.hi - w.lo) >= 2) & (seconds > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(defined, increase / seconds, np.nan)
            slack = np.where(defined, error / seconds, np.inf)
        return rate, slack

    def subject(self, index: int) -> Subject:
        w = self.windows
        return Subject(w.labels, w.labels_key, w.points(int(w.lo[index]), int(w.hi[index])))


class Change(SeriesJudge):
    """RATE_OF_CHANGE: newest in the window against the newest before it (within what
    the live engine loads, `reach`), or the oldest in it."""

    def __init__(
        self, windows: Windows, *, reach_lo: Ints, percent: bool, min_samples: int
    ) -> None:
        super().__init__(engine.RuleKind.RATE_OF_CHANGE, windows, min_samples=min_samples)
        w = windows
        before = w.lo > reach_lo
        inside = w.hi - w.lo
        self.base = np.where(before, w.lo - 1, np.where(inside > 1, w.lo, -1))
        self.percent = percent

    def _approx(self) -> tuple[Floats, Floats]:
        w = self.windows
        if not len(w.values):
            return np.full(len(w.times), np.nan), np.zeros(len(w.times))
        has = (self.base >= 0) & (w.hi > w.lo)
        last = w.values[np.maximum(w.hi - 1, 0)]
        base = w.values[np.maximum(self.base, 0)]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            change = last - base
            if self.percent:
                change = np.where(base != 0, change / np.abs(base) * 100.0, np.nan)
        change = np.where(has & np.isfinite(change), change, np.nan)
        return change, np.zeros(len(change))

    def subject(self, index: int) -> Subject:
        w = self.windows
        lo, hi, base = int(w.lo[index]), int(w.hi[index]), int(self.base[index])
        start = base if 0 <= base < lo else lo
        return Subject(w.labels, w.labels_key, w.points(start, hi))


class Anomaly(SeriesJudge):
    """ANOMALY: the z-score of the newest point, judged at every instant with data."""

    def __init__(self, windows: Windows, *, min_samples: int) -> None:
        super().__init__(engine.RuleKind.ANOMALY, windows, min_samples=min_samples)

    def candidates(self, spec: engine.RuleSpec) -> Mask:
        return self.enough() & (self.windows.counts > 3)

    def subject(self, index: int) -> Subject:
        w = self.windows
        return Subject(w.labels, w.labels_key, w.points(int(w.lo[index]), int(w.hi[index])))


class Occurrences(SeriesJudge):
    """EVENT: the events of a type in the window (0 is a count, never no data)."""

    def __init__(self, windows: Windows) -> None:
        super().__init__(engine.RuleKind.EVENT, windows, min_samples=0)

    def no_data(self) -> Mask:
        return np.zeros(len(self.windows.times), dtype=bool)

    def enough(self) -> Mask:
        return np.ones(len(self.windows.times), dtype=bool)

    def _approx(self) -> tuple[Floats, Floats]:
        counts = self.windows.counts.astype(np.float64)
        return counts, np.zeros(len(counts))

    def subject(self, index: int) -> Subject:
        w = self.windows
        return Subject({}, "{}", w.points(int(w.lo[index]), int(w.hi[index])))


def window_slices(ts: Micros, times: Micros, window_us: int) -> tuple[Ints, Ints]:
    """Per instant t, the slice of `ts` with t - window < ts <= t."""
    lo = np.searchsorted(ts, times - window_us, side="right").astype(np.int64)
    hi = np.searchsorted(ts, times, side="right").astype(np.int64)
    return lo, hi


def window_micros(seconds: float) -> int:
    return round(seconds * 1e6) if math.isfinite(seconds) else 0


# Instants per slice of `sliding_extreme`: its tables cover one slice's samples at a time.
_EXTREME_SLICE: Final = 65_536


def sliding_extreme(
    values: Floats, lo: Ints, hi: Ints, pick: Callable[[Floats, Floats], Floats]
) -> Floats:
    """`pick` (numpy's minimum or maximum) of values[lo:hi] for each window, exactly
    (NaN for an empty one): a sparse table over the samples a slice of instants covers,
    so any window is the pick of two overlapping power-of-two spans."""
    found = np.full(len(lo), np.nan)
    for first in range(0, len(lo), _EXTREME_SLICE):
        last = min(first + _EXTREME_SLICE, len(lo))
        start, stop = int(lo[first]), int(hi[last - 1])
        if stop <= start:
            continue
        q_lo, q_hi = lo[first:last] - start, hi[first:last] - start
        lengths = q_hi - q_lo
        levels = [values[start:stop]]
        span = 1
        while span * 2 <= int(lengths.max(initial=0)):
            previous = levels[-1]
            levels.append(pick(previous[:-span], previous[span:]))
            span *= 2
        filled = lengths > 0
        level = np.zeros(len(lengths), dtype=np.int64)
        level[filled] = np.floor(np.log2(lengths[filled])).astype(np.int64)
        part = found[first:last]
        for k, table in enumerate(levels):
            chosen = filled & (level == k)
            if chosen.any():
                left = table[q_lo[chosen]]
                right = table[q_hi[chosen] - (1 << k)]
                part[chosen] = pick(left, right)
    return found
