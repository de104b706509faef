"""Rule evaluation: a rule, its thresholds and a window of values in, an evaluation out.

Pure: no Django, no I/O, no clock. The lifecycle loads the data of one (rule, source),
calls `evaluate` at an instant `now` and decides what results mean over time (`for`
durations, keep-firing, silences, the missing-data policy, M-of-N with
`condition_held`); this module only says what the data shows at that instant.

Decisions, in one place:

* Window: a point is in it when now - window < ts <= now. Points after `now` are
  ignored, so the caller must not pass a `now` earlier than the newest sample it means
  to judge. Input need not be sorted; points with equal timestamps are ordered by
  value, so no result depends on input order.
* Status: "no_data" - no point in the window (ABSENCE: no point at all);
  "insufficient_data" - fewer than `min_samples` points in the window, or points that
  do not define the value (a rate from one sample, a percent change from 0, the
  z-score of a flat window, an overflow); "breach" - a threshold holds; "ok" - none
  does. `value` is set exactly when the status is "breach" or "ok".
* Kinds (`aggregation` applies to THRESHOLD only, `change_percent` to RATE_OF_CHANGE):
  - THRESHOLD: `aggregation` of the values in the window. An empty window is no_data
    whatever the aggregation (the metric stopped reporting); where zero occurrences
    is a meaningful answer, use EVENT.
  - ABSENCE: seconds from the newest point (in the window or not) to `now`, 0 for a
    point after `now`. No point at all is no_data - infinitely old, the rule's
    missing-data policy decides. min_samples does not apply.
  - EVENT: the number of points (occurrences) in the window; 0 is a valid count,
    never no_data. min_samples does not apply.
  - RATE_OF_CHANGE: last - base; last is the newest point in the window, base the
    newest point at or before the window start or, without one, the oldest point in
    the window (the change since data began); undefined when that is `last` itself.
    change_percent: (last - base) / |base| x 100 (a rise is positive even from a
    negative base), undefined when base is 0.
  - ANOMALY: z = (last - mean(others)) / stdev(others, ddof=1), last the newest point
    in the window, others the rest of it. Undefined with fewer than 3 others or a zero
    deviation (at most 1e-12 of the largest |other|: rounding residue, not spread).
* Aggregations (THRESHOLD rules) and points: `alerts.aggregations`. Thresholds,
  severities and comparisons: `alerts.thresholds`. A threshold *triggers* when its
  comparison holds against its value; the most severe triggering threshold wins
  (severities are unique within a rule).
* Hysteresis: each threshold is a switch of its own. It switches on when it triggers
  and stays on while its comparison holds against its clear_value (without one: while
  it triggers); the result is the most severe threshold that is on. A value that
  triggers a threshold also passed every milder one of the same direction, so those
  are on too: while an alert fires at severity S, every threshold of S's direction
  up to S holds on by its clear value. `firing` is matched by severity to the rule's
  current threshold (an edited clear value applies at once, a removed severity is
  forgotten). A threshold never starts on its clear value, and the answer never
  depends on which values in between were seen. Drawdown WARNING > 10 (clear 8),
  EMERGENCY > 20 (clear 18): 10.1 WARNING, 20.1 EMERGENCY, 19 EMERGENCY, 15 WARNING,
  9 WARNING, 7 ok; and from EMERGENCY straight to 9 is WARNING as well (20.1 passed
  10 on its way up; 9 is above WARNING's clear value 8).
* Severities are monotonic by construction: within one direction (> / >=, or < / <=)
  a more extreme value triggers a superset of thresholds and holds on a superset, so
  it never gets a lower severity. A more severe threshold that is not more extreme
  only hides the milder one (WARNING > 10 beside EMERGENCY > 5 never shows);
  `check_monotonic` refuses such a rule.
* Never NaN or +-inf: points, thresholds and now are checked (ValueError); a value
  that overflows is undefined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice, pairwise
from types import MappingProxyType
from typing import Final, Literal

# The `X as X` imports are part of this module's interface: callers speak of
# `engine.Threshold`, `engine.Point`, `engine.Severity` as the engine's vocabulary.
from .aggregations import (
    ON_POINTS,
    ON_VALUES,
    PointAggregator,
    ValueAggregator,
    average,
    finite,
    newest,
    time_order,
)
from .aggregations import Aggregation as Aggregation
from .aggregations import Point as Point
from .aggregations import aggregate as aggregate
from .thresholds import DOWNWARD, OPERATORS, UPWARD, Operator, enum_member
from .thresholds import Comparison as Comparison
from .thresholds import Severity as Severity
from .thresholds import Threshold as Threshold

Status = Literal["breach", "ok", "no_data", "insufficient_data"]

_ZERO_DEVIATION: Final = 1e-12
_MIN_ANOMALY_OTHERS: Final = 3


class RuleKind(StrEnum):
    """What a rule watches."""

    THRESHOLD = "threshold"
    ABSENCE = "absence"
    EVENT = "event"
    RATE_OF_CHANGE = "rate_of_change"
    ANOMALY = "anomaly"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the data says for one (rule, source) at one instant."""

    status: Status
    value: float | None
    threshold: Threshold | None
    severity: Severity | None
    samples: int


_NO_DATA: Final = Evaluation("no_data", None, None, None, 0)


# --- rules ---------------------------------------------------------------------------

# A threshold with what evaluation needs at hand: (threshold, operator, value, clear).
_Tier = tuple[Threshold, Operator, float, float | None]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What to compute from a window of points, and the thresholds to judge it by."""

    kind: RuleKind
    thresholds: tuple[Threshold, ...]
    aggregation: Aggregation = Aggregation.LAST
    window: timedelta = timedelta(minutes=5)
    min_samples: int = 1
    change_percent: bool = False
    #: The thresholds, most severe first.
    ordered_thresholds: tuple[Threshold, ...] = field(init=False, repr=False, compare=False)
    # Precomputed so that an evaluation does no setup work.
    _tiers: tuple[_Tier, ...] = field(init=False, repr=False, compare=False)
    _by_severity: Mapping[Severity, _Tier] = field(init=False, repr=False, compare=False)
    _evaluate: _KindEvaluator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = enum_member("RuleSpec.kind", RuleKind, self.kind)
        aggregation = enum_member("RuleSpec.aggregation", Aggregation, self.aggregation)
        thresholds = tuple(self.thresholds)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "aggregation", aggregation)
        object.__setattr__(self, "thresholds", thresholds)
        if not thresholds:
            raise ValueError("RuleSpec.thresholds: a rule needs at least one threshold")
        if not all(isinstance(t, Threshold) for t in thresholds):
            raise ValueError("RuleSpec.thresholds must hold Threshold values only")
        seen: set[Severity] = set()
        for threshold in thresholds:
            if threshold.severity in seen:
                raise ValueError(
                    f"RuleSpec.thresholds: more than one {threshold.severity.label} threshold"
                )
            seen.add(threshold.severity)
        if self.min_samples < 0:
            raise ValueError(f"RuleSpec.min_samples must be >= 0, got {self.min_samples}")
        if self.window <= timedelta(0):
            raise ValueError(f"RuleSpec.window must be positive, got {self.window}")
        ordered = tuple(sorted(thresholds, key=_severity, reverse=True))
        tiers = tuple((t, OPERATORS[t.comparison], t.value, t.clear_value) for t in ordered)
        object.__setattr__(self, "ordered_thresholds", ordered)
        object.__setattr__(self, "_tiers", tiers)
        object.__setattr__(self, "_by_severity", {tier[0].severity: tier for tier in tiers})
        if kind is RuleKind.THRESHOLD:
            evaluator = (
                _threshold_on_points(ON_POINTS[aggregation])
                if aggregation in ON_POINTS
                else _threshold_on_values(ON_VALUES[aggregation])
            )
        else:
            evaluator = _KIND_EVALUATORS[kind]
        object.__setattr__(self, "_evaluate", evaluator)


def _severity(threshold: Threshold) -> Severity:
    return threshold.severity


def check_monotonic(rule: RuleSpec) -> None:
    """Raise ValueError unless, per direction, each more severe threshold is more extreme.

    For > / >= a more severe threshold needs a larger value (or the same value with >
    against a milder >=); for < / <= a smaller one. == and != are not checked.
    """
    for direction, word in ((UPWARD, "larger"), (DOWNWARD, "smaller")):
        tiers = sorted((t for t in rule.thresholds if t.comparison in direction), key=_severity)
        for milder, worse in pairwise(tiers):
            if not _narrower(worse, milder):
                raise ValueError(
                    f"threshold {worse} is more severe than {milder} but not more extreme, "
                    f"so {milder.severity.label} could never show: a more severe "
                    f"{worse.comparison.value} threshold needs a {word} value"
                )


def _narrower(worse: Threshold, milder: Threshold) -> bool:
    """Return whether the values triggering `worse` are a strict subset of `milder`'s."""
    if worse.value == milder.value:
        strict = worse.comparison in (Comparison.GT, Comparison.LT)
        return strict and milder.comparison in (Comparison.GTE, Comparison.LTE)
    if worse.comparison in UPWARD:
        return worse.value > milder.value
    return worse.value < milder.value


def condition_held(history: Sequence[bool], m: int, n: int) -> bool:
    """Return whether at least `m` of the last `n` results (oldest first) are True.

    With fewer than `n` results, judge on those there are, still requiring `m` Trues.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 1 <= m <= n:
        raise ValueError(f"m must be between 1 and n ({n}), got {m}")
    held = 0
    for result in islice(reversed(history), n):
        if result:
            held += 1
    return held >= m


# --- evaluation ----------------------------------------------------------------------


def evaluate(
    rule: RuleSpec, points: Sequence[Point], *, now: datetime, firing: Threshold | None = None
) -> Evaluation:
    """Return what `points` say about `rule` at `now`.

    `firing` is the threshold the open alert fires on (None without an open alert);
    hysteresis applies to it as the module docstring describes.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    return rule._evaluate(rule, points, now, firing)


_KindEvaluator = Callable[[RuleSpec, Sequence[Point], datetime, Threshold | None], Evaluation]


def _judge(
    rule: RuleSpec, value: float | None, samples: int, firing: Threshold | None
) -> Evaluation:
    if value is None:
        return _insufficient(samples)
    chosen: Threshold | None = None
    for threshold, holds, bound, _ in rule._tiers:
        if holds(value, bound):
            chosen = threshold
            break
    if firing is not None and firing.severity in rule._by_severity:
        # The firing threshold and the milder ones of its direction were all passed on
        # the way to it: the most severe of them still holding on its clear value wins
        # over a milder triggering one (tiers run most severe first).
        upward = rule._by_severity[firing.severity][0].comparison in UPWARD
        for threshold, holds, _, clear in rule._tiers:
            if chosen is not None and threshold.severity <= chosen.severity:
                break
            if (
                clear is not None
                and threshold.severity <= firing.severity
                and (threshold.comparison in UPWARD) is upward
                and holds(value, clear)
            ):
                chosen = threshold
                break
    if chosen is None:
        return Evaluation("ok", value, None, None, samples)
    return Evaluation("breach", value, chosen, chosen.severity, samples)


def _insufficient(samples: int) -> Evaluation:
    return Evaluation("insufficient_data", None, None, None, samples)


def _threshold_on_values(aggregator: ValueAggregator) -> _KindEvaluator:
    def threshold_rule(
        rule: RuleSpec, points: Sequence[Point], now: datetime, firing: Threshold | None
    ) -> Evaluation:
        start = now - rule.window
        values = [p.value for p in points if start < p.ts <= now]
        if not values:
            return _NO_DATA
        if len(values) < rule.min_samples:
            return _insufficient(len(values))
        return _judge(rule, aggregator(values), len(values), firing)

    return threshold_rule


def _threshold_on_points(aggregator: PointAggregator) -> _KindEvaluator:
    def threshold_rule(
        rule: RuleSpec, points: Sequence[Point], now: datetime, firing: Threshold | None
    ) -> Evaluation:
        start = now - rule.window
        inside = [p for p in points if start < p.ts <= now]
        if not inside:
            return _NO_DATA
        if len(inside) < rule.min_samples:
            return _insufficient(len(inside))
        return _judge(rule, aggregator(inside), len(inside), firing)

    return threshold_rule


def _absence(
    rule: RuleSpec, points: Sequence[Point], now: datetime, firing: Threshold | None
) -> Evaluation:
    if not points:
        return _NO_DATA
    start = now - rule.window
    samples = sum(1 for p in points if start < p.ts <= now)
    age = (now - max(p.ts for p in points)).total_seconds()
    # Judged on age alone: with min_samples a lapsed heartbeat (an empty window)
    # would be "insufficient" instead of a breach.
    return _judge(rule, max(0.0, age), samples, firing)


def _event(
    rule: RuleSpec, points: Sequence[Point], now: datetime, firing: Threshold | None
) -> Evaluation:
    start = now - rule.window
    count = sum(1 for p in points if start < p.ts <= now)
    return _judge(rule, float(count), count, firing)


def _rate_of_change(
    rule: RuleSpec, points: Sequence[Point], now: datetime, firing: Threshold | None
) -> Evaluation:
    start = now - rule.window
    inside = [p for p in points if start < p.ts <= now]
    if not inside:
        return _NO_DATA
    if len(inside) < rule.min_samples:
        return _insufficient(len(inside))
    before = [p for p in points if p.ts <= start]
    if before:
        base = newest(before).value
    elif len(inside) > 1:
        base = min(inside, key=time_order).value
    else:
        return _insufficient(len(inside))
    change = finite(newest(inside).value - base)
    if change is not None and rule.change_percent:
        change = finite(change / abs(base) * 100.0) if base != 0 else None
    return _judge(rule, change, len(inside), firing)


def _anomaly(
    rule: RuleSpec, points: Sequence[Point], now: datetime, firing: Threshold | None
) -> Evaluation:
    start = now - rule.window
    inside = [p for p in points if start < p.ts <= now]
    if not inside:
        return _NO_DATA
    if len(inside) < rule.min_samples:
        return _insufficient(len(inside))
    return _judge(rule, _z_score(inside), len(inside), firing)


def _z_score(inside: list[Point]) -> float | None:
    if len(inside) <= _MIN_ANOMALY_OTHERS:
        return None
    ordered = sorted(inside, key=time_order)
    last = ordered[-1].value
    others = [p.value for p in islice(ordered, len(ordered) - 1)]
    mean = average(others)
    if mean is None:
        return None
    try:
        squares = math.fsum((x - mean) * (x - mean) for x in others)
    except OverflowError:
        return None
    deviation = math.sqrt(squares / (len(others) - 1))
    scale = max(abs(x) for x in others)
    if not math.isfinite(deviation) or deviation <= _ZERO_DEVIATION * scale:
        return None
    return finite((last - mean) / deviation)


_KIND_EVALUATORS: Final[Mapping[RuleKind, _KindEvaluator]] = MappingProxyType(
    {
        RuleKind.ABSENCE: _absence,
        RuleKind.EVENT: _event,
        RuleKind.RATE_OF_CHANGE: _rate_of_change,
        RuleKind.ANOMALY: _anomaly,
    }
)


def evaluate_aggregate(
    rule: RuleSpec, value: float | None, samples: int, *, firing: Threshold | None = None
) -> Evaluation:
    """Judge a window aggregate computed elsewhere (by the database), as `evaluate` would.

    For THRESHOLD rules whose aggregation the database computes the same way (avg, min,
    max, sum, count, and p95 / p99 as nearest-rank percentiles): `value` is the
    aggregate of the `samples` points in the window.
    """
    if samples == 0:
        return _NO_DATA
    if samples < rule.min_samples or value is None or not math.isfinite(value):
        return _insufficient(samples)
    return _judge(rule, value, samples, firing)
