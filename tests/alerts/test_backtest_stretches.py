"""The backtest's shortcuts agree with the engine they stand in for.

`stretches.severities` chooses, for many values at once, the severity `engine._judge`
chooses for each (hysteresis included); the window approximations bound the error of
the aggregate the engine computes exactly. Checked on generated rules and values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import engine
from alerts.aggregations import Aggregation
from alerts.backtest import stretches
from alerts.backtest.windows import Aggregated, Windows, sliding_extreme, window_slices
from alerts.judging import Subject
from metrics.models import MetricSeries, Source

NOW = datetime(2026, 1, 1, tzinfo=UTC)
VALUES = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def one_way_rules(draw: st.DrawFn) -> engine.RuleSpec:
    """Monotonic thresholds all pointing one way, some with clear values."""
    upward = draw(st.booleans())
    severities = sorted(draw(st.sets(st.sampled_from([10, 20, 30, 40, 50, 60]), min_size=1)))
    bounds = sorted(draw(st.lists(VALUES, min_size=len(severities), max_size=len(severities),
                                  unique=True)))  # fmt: skip
    if not upward:
        bounds.reverse()
    thresholds = []
    for severity, bound in zip(severities, bounds, strict=True):
        comparison = draw(st.sampled_from([">", ">="] if upward else ["<", "<="]))
        slack = draw(st.none() | st.floats(min_value=0, max_value=1e3))
        clear = None if slack is None else (bound - slack if upward else bound + slack)
        thresholds.append(
            engine.Threshold(engine.Severity(severity), engine.Comparison(comparison), bound, clear)
        )
    spec = engine.RuleSpec(kind=engine.RuleKind.THRESHOLD, thresholds=tuple(thresholds))
    engine.check_monotonic(spec)
    return spec


@settings(max_examples=300, deadline=None)
@given(spec=one_way_rules(), values=st.lists(VALUES, min_size=1, max_size=30), data=st.data())
def test_it_chooses_the_severity_the_engine_chooses(
    spec: engine.RuleSpec, values: list[float], data: st.DataObject
) -> None:
    firing = data.draw(st.none() | st.sampled_from([int(t.severity) for t in spec.thresholds]))
    threshold = next((t for t in spec.thresholds if int(t.severity) == firing), None)

    chosen = stretches.severities(np.array(values), spec, firing)

    for value, severity in zip(values, chosen, strict=True):
        found = engine.evaluate_aggregate(spec, value, 1, firing=threshold)
        assert severity == (0 if found.severity is None else int(found.severity))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(VALUES, min_size=1, max_size=60),
    window=st.integers(min_value=1, max_value=20),
    aggregation=st.sampled_from([Aggregation.AVG, Aggregation.SUM]),
)
def test_its_window_sums_are_within_their_bound_of_the_engines(
    values: list[float], window: int, aggregation: Aggregation
) -> None:
    ts = np.arange(len(values), dtype=np.int64) * 1_000_000
    times = ts.copy()
    lo, hi = window_slices(ts, times, window * 1_000_000)
    judge = Aggregated(
        Windows({}, "{}", ts, np.array(values), times, lo, hi, since=0),
        aggregation=aggregation, min_samples=1,
    )  # fmt: skip
    approx = judge.approx()
    assert approx is not None
    estimate, error = approx
    spec = engine.RuleSpec(
        kind=engine.RuleKind.THRESHOLD, aggregation=aggregation,
        thresholds=(engine.Threshold(engine.Severity.WARNING, engine.Comparison.GT, 0.0),),
        window=timedelta(seconds=window),
    )  # fmt: skip
    for index in range(len(times)):
        subject = judge.subject(index)
        assert isinstance(subject, Subject)
        exact = subject.judge(spec, NOW, None).value
        assert exact is not None
        assert abs(estimate[index] - exact) <= error[index]


@pytest.mark.django_db(transaction=True)
def test_a_long_read_in_two_halves_is_the_whole_series_in_order(source: Source) -> None:
    """Outside a transaction a read of days is split over two connections: nothing is
    lost or doubled at the seam."""
    from django.utils import timezone

    from alerts.backtest import data
    from tests.alerts.conftest import record

    end = timezone.now().replace(microsecond=0)
    start = end - timedelta(days=3)
    for minute in range(0, 3 * 1440, 7):
        record(source, "equity", float(minute), ts=start + timedelta(minutes=minute))
    series_id = MetricSeries.objects.get(source=source, name="equity").pk
    assert not connection.in_atomic_block

    ts, values = data.samples_read(series_id, start - timedelta(seconds=1), end)

    minutes = list(range(0, 3 * 1440, 7))
    assert ((ts - data.micros(start)) // 60_000_000).tolist() == minutes
    assert values.tolist() == [float(minute) for minute in minutes]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(VALUES, min_size=0, max_size=80),
    gaps=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=80),
    window=st.integers(min_value=1, max_value=30),
)
def test_its_sliding_minimum_and_maximum_are_the_engines(
    values: list[float], gaps: list[int], window: int
) -> None:
    ts = np.cumsum(np.array(gaps[: len(values)] + [1] * (len(values) - len(gaps)), dtype=np.int64))
    ts = np.unique(ts)[: len(values)] * 1_000_000
    values = values[: len(ts)]
    times = np.arange(0, 40, dtype=np.int64) * 1_000_000
    lo, hi = window_slices(ts, times, window * 1_000_000)

    lowest = sliding_extreme(np.array(values, dtype=np.float64), lo, hi, np.minimum)
    highest = sliding_extreme(np.array(values, dtype=np.float64), lo, hi, np.maximum)

    for index in range(len(times)):
        inside = values[int(lo[index]) : int(hi[index])]
        if not inside:
            assert np.isnan(lowest[index])
            assert np.isnan(highest[index])
        else:
            assert lowest[index] == min(inside)
            assert highest[index] == max(inside)
