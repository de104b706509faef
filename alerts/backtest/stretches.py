"""Stretches where an open alert only goes on: what the lifecycle does with them in bulk.

While an alert fires (or waits out its `for`) at severity S, most evaluations find the
same breach at S again; the live engine then only moves counters (a quiet update:
count, last seen, value, peak). Here the severity the engine would choose at each
instant is computed for all instants at once, with the engine's own rules (the most
severe triggering threshold; hysteresis holding thresholds up to S on by their clear
values, `alerts.engine._judge`), at the value's lower and upper rounding bound. Where
both give S, the instant is such a quiet breach for certain; anything else (another
severity, a doubt, no data, a guard that fails, an inhibition that changes) is judged
one by one. Rules whose thresholds point both ways or use == / != are always judged
one by one (their severity is not monotonic in the value).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts import engine
from alerts.thresholds import DOWNWARD, UPWARD

Floats = npt.NDArray[np.float64]
Severities = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_NUMPY = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def one_direction(spec: engine.RuleSpec) -> bool:
    """Whether every threshold points the same way (> / >=, or < / <=)."""
    comparisons = {t.comparison for t in spec.thresholds}
    return comparisons <= UPWARD or comparisons <= DOWNWARD


def severities(values: Floats, spec: engine.RuleSpec, firing: int | None) -> Severities:
    """The severity the engine chooses for each value (0: none), with the open alert
    at `firing` holding thresholds on by their clear values (`engine._judge`)."""
    assert all(t.comparison.value in _NUMPY for t in spec.thresholds)
    chosen = np.zeros(len(values), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for threshold in spec.ordered_thresholds:  # most severe first
            holds = _NUMPY[threshold.comparison.value](values, threshold.value) & (chosen == 0)
            chosen[holds] = int(threshold.severity)
        tier = next((t for t in spec.thresholds if int(t.severity) == firing), None)
        if tier is None:
            return chosen
        upward = tier.comparison in UPWARD
        done = np.zeros(len(values), dtype=bool)
        for threshold in spec.ordered_thresholds:
            severity = int(threshold.severity)
            done |= chosen >= severity
            if (
                threshold.clear_value is None
                or severity > int(tier.severity)
                or (threshold.comparison in UPWARD) is not upward
            ):
                continue
            held = ~done & _NUMPY[threshold.comparison.value](values, threshold.clear_value)
            chosen[held] = severity
            done |= held
    return chosen


def quiet_band(values: Floats, error: Floats, spec: engine.RuleSpec, firing: int) -> Mask:
    """Where the engine surely finds a breach at `firing` with an alert open at it."""
    low = severities(values - error, spec, firing)
    high = severities(values + error, spec, firing)
    band: Mask = (low == firing) & (high == firing) & np.isfinite(values)
    return band


def more_extreme_of(upward: bool, values: Floats) -> int:
    """The index of the most extreme value (the highest for > / >=, else the lowest);
    `values` are finite (those of a quiet band)."""
    return int(np.argmax(values) if upward else np.argmin(values))
