"""Rule evaluation, checked against figures worked out by hand and against properties."""

from __future__ import annotations

import math
import re
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import (
    Aggregation,
    Comparison,
    Evaluation,
    Point,
    RuleKind,
    RuleSpec,
    Severity,
    Threshold,
    aggregate,
    check_monotonic,
    condition_held,
    evaluate,
)

NOW = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)

WARNING = Severity.WARNING
ERROR = Severity.ERROR
CRITICAL = Severity.CRITICAL
EMERGENCY = Severity.EMERGENCY
GT, GTE, LT, LTE = Comparison.GT, Comparison.GTE, Comparison.LT, Comparison.LTE


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def series(*values: float, step: float = 30) -> list[Point]:
    """Return points `step` seconds apart, oldest first, the last one at NOW."""
    last = len(values) - 1
    return [Point(ago((last - i) * step), value) for i, value in enumerate(values)]


def rule(
    kind: RuleKind = RuleKind.THRESHOLD, *thresholds: Threshold, **options: object
) -> RuleSpec:
    return RuleSpec(kind, thresholds or (Threshold(WARNING, GT, 10),), **options)  # type: ignore[arg-type]


def severity_of(evaluation: Evaluation) -> int:
    return 0 if evaluation.severity is None else int(evaluation.severity)


# --- severities and comparisons ------------------------------------------------------


def test_it_orders_severities_and_reads_their_labels() -> None:
    assert list(Severity) == sorted(Severity)
    assert Severity.DEBUG < Severity.INFO < WARNING < ERROR < CRITICAL < EMERGENCY
    assert WARNING.label == "warning"
    assert Severity.from_label(" Critical ") is CRITICAL
    assert [Severity.from_label(s.label) for s in Severity] == list(Severity)


def test_it_refuses_an_unknown_severity_label() -> None:
    with pytest.raises(ValueError, match="unknown severity 'fatal'"):
        Severity.from_label("fatal")


@pytest.mark.parametrize(
    ("comparison", "below", "equal", "above"),
    [
        (GT, False, False, True),
        (GTE, False, True, True),
        (LT, True, False, False),
        (LTE, True, True, False),
        (Comparison.EQ, False, True, False),
        (Comparison.NE, True, False, True),
    ],
)
def test_it_compares_values_with_each_operator(
    comparison: Comparison, below: bool, equal: bool, above: bool
) -> None:
    assert comparison.holds(9.5, 10) is below
    assert comparison.holds(10, 10) is equal
    assert comparison.holds(10.5, 10) is above


# --- aggregations --------------------------------------------------------------------

# 2, 4, 4, 4, 5, 5, 7, 9 at 30 s steps: the oldest is 210 s old, inside a 5 min window.
TEXTBOOK = series(2, 4, 4, 4, 5, 5, 7, 9)
# Never inside the window: exactly at its (excluded) start, and after NOW.
OUTSIDE = [Point(ago(300), 100.0), Point(NOW + timedelta(seconds=1), -100.0)]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (Aggregation.LAST, 9),  # the newest point
        (Aggregation.AVG, 5),  # 40 / 8
        (Aggregation.MIN, 2),
        (Aggregation.MAX, 9),
        (Aggregation.SUM, 40),  # 2 + 4 + 4 + 4 + 5 + 5 + 7 + 9
        (Aggregation.COUNT, 8),
        (Aggregation.P95, 9),  # rank ceil(0.95 x 8) = ceil(7.6) = 8 -> 9
        (Aggregation.P99, 9),  # rank ceil(0.99 x 8) = 8 -> 9
        (Aggregation.RATE, 7 / 210),  # rises 2+0+0+1+0+2+2 = 7 over 210 s
    ],
)
def test_it_aggregates_the_points_in_the_window(aggregation: Aggregation, expected: float) -> None:
    shuffled = [*reversed(TEXTBOOK[4:]), *OUTSIDE, *TEXTBOOK[:4]]
    value = aggregate(aggregation, shuffled, now=NOW, window=WINDOW)
    assert value == pytest.approx(expected)


def test_it_takes_percentiles_by_nearest_rank() -> None:
    twenty = series(*range(20, 0, -1), step=1)  # 1..20, in descending time order
    # p95: rank ceil(0.95 x 20) = 19 -> 19; p99: rank ceil(0.99 x 20) = ceil(19.8) = 20.
    assert aggregate(Aggregation.P95, twenty, now=NOW, window=WINDOW) == 19
    assert aggregate(Aggregation.P99, twenty, now=NOW, window=WINDOW) == 20
    hundred = series(*range(1, 101), step=1)
    # p95: rank 95 -> 95; p99: rank 99 -> 99 (an observed value, no interpolation).
    assert aggregate(Aggregation.P95, hundred, now=NOW, window=WINDOW) == 95
    assert aggregate(Aggregation.P99, hundred, now=NOW, window=WINDOW) == 99
    assert aggregate(Aggregation.P99, series(3.5), now=NOW, window=WINDOW) == 3.5


def test_it_treats_a_counter_decrease_as_a_reset() -> None:
    counter = series(10, 40, 5, 35)  # 30 s apart: 90 s in all
    # +30 (10 -> 40), reset: +5 (restarted from 0 to 5), +30 (5 -> 35) = 65 over 90 s.
    assert aggregate(Aggregation.RATE, counter, now=NOW, window=WINDOW) == pytest.approx(65 / 90)
    # A plain counter: 100 -> 160 over 60 s = 1 per second.
    assert aggregate(Aggregation.RATE, series(100, 160, step=60), now=NOW, window=WINDOW) == 1


def test_it_leaves_a_rate_undefined_without_two_moments() -> None:
    assert aggregate(Aggregation.RATE, series(5), now=NOW, window=WINDOW) is None
    same_time = [Point(NOW, 1), Point(NOW, 4)]
    assert aggregate(Aggregation.RATE, same_time, now=NOW, window=WINDOW) is None


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_it_aggregates_an_empty_window(aggregation: Aggregation) -> None:
    value = aggregate(aggregation, OUTSIDE, now=NOW, window=WINDOW)
    if aggregation in (Aggregation.SUM, Aggregation.COUNT):
        assert value == 0
    else:
        assert value is None


def test_it_breaks_timestamp_ties_by_value() -> None:
    tied = [Point(NOW, 3), Point(NOW, 7), Point(ago(10), 50)]
    assert aggregate(Aggregation.LAST, tied, now=NOW, window=WINDOW) == 7
    assert aggregate(Aggregation.LAST, tied[::-1], now=NOW, window=WINDOW) == 7


def test_it_survives_sums_past_the_largest_float() -> None:
    huge = series(1e308, 1e308)
    assert aggregate(Aggregation.AVG, huge, now=NOW, window=WINDOW) == 1e308  # 2e308 / 2
    assert aggregate(Aggregation.SUM, huge, now=NOW, window=WINDOW) is None  # 2e308
    # fsum overflows midway through 1e308 + 1e308 - 1e308; the exact sum is 1e308.
    back = series(1e308, 1e308, -1e308)
    assert aggregate(Aggregation.SUM, back, now=NOW, window=WINDOW) == 1e308


# --- threshold rules, no_data and insufficient_data ----------------------------------


def test_it_judges_a_window_average() -> None:
    high_average = rule(RuleKind.THRESHOLD, Threshold(WARNING, GT, 4.5), aggregation="avg")
    result = evaluate(high_average, TEXTBOOK + OUTSIDE, now=NOW)
    # avg 5 > 4.5; the 100 at the window start and the -100 after NOW do not count.
    assert result == Evaluation("breach", 5.0, high_average.thresholds[0], WARNING, 8)
    assert evaluate(high_average, series(4, 5), now=NOW).status == "ok"  # avg 4.5


def test_it_reports_no_data_for_an_empty_window() -> None:
    counting = rule(RuleKind.THRESHOLD, Threshold(WARNING, GTE, 0), aggregation="count")
    assert evaluate(counting, [], now=NOW) == Evaluation("no_data", None, None, None, 0)
    assert evaluate(counting, OUTSIDE, now=NOW).status == "no_data"


def test_it_waits_for_min_samples() -> None:
    win_rate = rule(RuleKind.THRESHOLD, Threshold(WARNING, LT, 40), min_samples=10)
    nine = series(*[30.0] * 9)
    assert evaluate(win_rate, nine, now=NOW) == Evaluation("insufficient_data", None, None, None, 9)
    ten = series(*[30.0] * 10)
    assert evaluate(win_rate, ten, now=NOW).status == "breach"


def test_it_still_reports_no_data_when_no_samples_are_required() -> None:
    anything = rule(RuleKind.THRESHOLD, Threshold(WARNING, GT, 0), min_samples=0)
    assert evaluate(anything, [], now=NOW).status == "no_data"


def test_it_reports_insufficient_data_when_points_do_not_define_the_value() -> None:
    rising = rule(RuleKind.THRESHOLD, Threshold(WARNING, GT, 1), aggregation="rate")
    assert evaluate(rising, series(5), now=NOW) == Evaluation(
        "insufficient_data", None, None, None, 1
    )


def test_it_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        evaluate(rule(), series(1), now=datetime(2024, 1, 3, 12))


# --- absence, events, rate of change, anomaly ----------------------------------------


def test_it_measures_absence_as_seconds_since_the_newest_point() -> None:
    lapsed = rule(RuleKind.ABSENCE, Threshold(CRITICAL, GT, 60))
    result = evaluate(lapsed, [Point(ago(200), 1), Point(ago(90), 1)], now=NOW)
    assert result == Evaluation("breach", 90.0, lapsed.thresholds[0], CRITICAL, 2)
    assert evaluate(lapsed, [Point(ago(30), 1)], now=NOW).status == "ok"


def test_it_judges_absence_on_points_older_than_the_window() -> None:
    stale_artifact = rule(RuleKind.ABSENCE, Threshold(WARNING, GT, 24 * 3600), min_samples=5)
    # Updated 25 h ago: nothing in the 5 min window, yet the age is known (90,000 s).
    result = evaluate(stale_artifact, [Point(ago(25 * 3600), 1)], now=NOW)
    assert (result.status, result.value, result.samples) == ("breach", 90_000.0, 0)


def test_it_reports_no_data_when_nothing_was_ever_seen() -> None:
    lapsed = rule(RuleKind.ABSENCE, Threshold(CRITICAL, GT, 60))
    assert evaluate(lapsed, [], now=NOW).status == "no_data"


def test_it_counts_a_point_after_now_as_fresh() -> None:
    lapsed = rule(RuleKind.ABSENCE, Threshold(CRITICAL, GT, 60))
    result = evaluate(lapsed, [Point(NOW + timedelta(seconds=2), 1)], now=NOW)
    assert (result.status, result.value) == ("ok", 0.0)


def test_it_counts_events_in_the_window() -> None:
    failures = rule(RuleKind.EVENT, Threshold(WARNING, GTE, 3), window=timedelta(hours=1))
    # 3 inside the hour; the one 2 h ago does not count.
    events = [Point(ago(s), 1) for s in (7200, 3000, 60, 1)]
    result = evaluate(failures, events, now=NOW)
    assert result == Evaluation("breach", 3.0, failures.thresholds[0], WARNING, 3)


def test_it_counts_zero_events_as_a_value() -> None:
    tripped = rule(RuleKind.EVENT, Threshold(CRITICAL, GTE, 1))
    assert evaluate(tripped, [], now=NOW) == Evaluation("ok", 0.0, None, None, 0)


def test_it_measures_change_from_the_point_at_the_window_start() -> None:
    falling = rule(RuleKind.RATE_OF_CHANGE, Threshold(WARNING, LT, -10))
    points = [Point(ago(360), 100), Point(ago(300), 110), Point(ago(120), 120), Point(NOW, 95)]
    # base is the 110 at the window start (not the older 100): 95 - 110 = -15 < -10.
    result = evaluate(falling, points, now=NOW)
    assert (result.status, result.value, result.samples) == ("breach", -15.0, 2)


def test_it_measures_percent_change() -> None:
    falling = rule(RuleKind.RATE_OF_CHANGE, Threshold(WARNING, LT, -10), change_percent=True)
    points = [Point(ago(300), 110), Point(ago(120), 120), Point(NOW, 95)]
    # (95 - 110) / 110 x 100 = -13.63...%
    assert evaluate(falling, points, now=NOW).value == pytest.approx(-1500 / 110)
    # From a negative base a rise is positive: (-50 - -100) / |-100| x 100 = +50%.
    recovering = [Point(ago(300), -100), Point(NOW, -50)]
    assert evaluate(falling, recovering, now=NOW).value == pytest.approx(50)


def test_it_measures_change_since_the_data_began_inside_the_window() -> None:
    rising = rule(RuleKind.RATE_OF_CHANGE, Threshold(WARNING, GT, 5))
    # Nothing at or before the window start: base is the oldest in the window, 10.
    assert evaluate(rising, series(10, 12, 18), now=NOW).value == 8  # 18 - 10


def test_it_leaves_change_undefined_from_one_point_or_a_zero_base() -> None:
    rising = rule(RuleKind.RATE_OF_CHANGE, Threshold(WARNING, GT, 5), change_percent=True)
    assert evaluate(rising, series(10), now=NOW).status == "insufficient_data"
    from_zero = [Point(ago(300), 0), Point(NOW, 5)]
    assert evaluate(rising, from_zero, now=NOW).status == "insufficient_data"
    assert evaluate(rising, [Point(ago(400), 5)], now=NOW).status == "no_data"


def test_it_scores_the_newest_point_against_the_rest_of_the_window() -> None:
    anomaly = rule(RuleKind.ANOMALY, Threshold(WARNING, GT, 3), Threshold(CRITICAL, GT, 4.5))
    # others 2, 4, 4, 4, 5, 5, 7, 9: mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32,
    # stdev (ddof=1) sqrt(32 / 7) = 2.13809; last 15: z = (15 - 5) / 2.13809 = 4.677.
    result = evaluate(anomaly, series(2, 4, 4, 4, 5, 5, 7, 9, 15), now=NOW)
    assert result.value == pytest.approx(10 / math.sqrt(32 / 7))
    assert (result.status, result.severity, result.samples) == ("breach", CRITICAL, 9)


def test_it_scores_anomalies_from_three_other_points() -> None:
    anomaly = rule(RuleKind.ANOMALY, Threshold(WARNING, GT, 3))
    # others 1, 2, 3: mean 2, stdev sqrt((1 + 0 + 1) / 2) = 1; last 5: z = 3, not > 3.
    assert evaluate(anomaly, series(1, 2, 3, 5), now=NOW) == Evaluation("ok", 3.0, None, None, 4)
    # Two others are too few.
    assert evaluate(anomaly, series(1, 3, 5), now=NOW).status == "insufficient_data"


def test_it_leaves_the_z_score_of_a_flat_window_undefined() -> None:
    anomaly = rule(RuleKind.ANOMALY, Threshold(WARNING, GT, 3))
    # fsum(0.1 x 3) / 3 = 0.10000000000000002: a residue deviation of 1.7e-17, not spread.
    assert evaluate(anomaly, series(0.1, 0.1, 0.1, 9), now=NOW).status == "insufficient_data"
    assert evaluate(anomaly, series(0, 0, 0, 9), now=NOW).status == "insufficient_data"


def test_it_leaves_overflowing_values_undefined() -> None:
    extreme = series(-1e308, 1e308, -1e308, 1e308, 0)
    # rate: rises of 2e308 (inf) per step.
    assert aggregate(Aggregation.RATE, extreme[:2], now=NOW, window=WINDOW) is None
    for kind in (RuleKind.RATE_OF_CHANGE, RuleKind.ANOMALY):
        # change 1e308 - -1e308; mean 0 but squared deviations of 1e616.
        result = evaluate(rule(kind), extreme[:2] if kind == "rate_of_change" else extreme, now=NOW)
        assert (result.status, result.value) == ("insufficient_data", None)
    anomaly = rule(RuleKind.ANOMALY)
    # z = (1e308 - 2e-5) / 1e-5 = 1e313; squared deviations 1e308 + 0 + 1e308.
    for window in (series(1e-5, 2e-5, 3e-5, 1e308), series(-1e154, 0, 1e154, 5)):
        assert evaluate(anomaly, window, now=NOW).status == "insufficient_data"


# --- hysteresis ----------------------------------------------------------------------

DRAWDOWN_WARNING = Threshold(WARNING, GT, 10, clear_value=8)
DRAWDOWN_EMERGENCY = Threshold(EMERGENCY, GT, 20, clear_value=18)
DRAWDOWN = RuleSpec(RuleKind.THRESHOLD, (DRAWDOWN_WARNING, DRAWDOWN_EMERGENCY))


def walk(spec: RuleSpec, values: list[float], firing: Threshold | None = None) -> list[str]:
    """Evaluate `values` one after the other as the lifecycle would: the last breach fires."""
    seen = []
    for value in values:
        result = evaluate(spec, [Point(NOW, value)], now=NOW, firing=firing)
        firing = result.threshold
        seen.append("ok" if result.severity is None else result.severity.label)
    return seen


def test_it_steps_a_drawdown_up_and_down_its_tiers() -> None:
    # 10.1 > 10: WARNING; 20.1 > 20: EMERGENCY; 19 > 18 (EMERGENCY's clear): still
    # EMERGENCY; 15 <= 18 releases it but 15 > 10 triggers WARNING; 9 > 8 (WARNING's
    # clear): still WARNING; 7 <= 8: ok.
    assert walk(DRAWDOWN, [10.1, 20.1, 19, 15, 9, 7]) == [
        "warning",
        "emergency",
        "emergency",
        "warning",
        "warning",
        "ok",
    ]


def test_it_falls_back_to_the_triggering_tier_without_a_clear_value() -> None:
    plain = RuleSpec(RuleKind.THRESHOLD, (DRAWDOWN_WARNING, Threshold(EMERGENCY, GT, 20)))
    assert walk(plain, [20.1, 19.9, 15]) == ["emergency", "warning", "warning"]


def test_it_never_starts_an_alert_on_a_clear_value() -> None:
    # 9 lies in WARNING's clear band, but nothing fires yet.
    assert walk(DRAWDOWN, [9]) == ["ok"]
    assert walk(DRAWDOWN, [7, 9]) == ["ok", "ok"]


def test_it_steps_down_to_the_milder_tier_whatever_values_came_in_between() -> None:
    # 21 passed 10 on its way up, so WARNING is on as well: from EMERGENCY straight to
    # 9 (above WARNING's clear value 8) steps down to WARNING, as 11 -> 21 -> 15 -> 9 does.
    assert walk(DRAWDOWN, [11, 21, 15, 9]) == ["warning", "emergency", "warning", "warning"]
    assert walk(DRAWDOWN, [11, 21, 9]) == ["warning", "emergency", "warning"]
    assert walk(DRAWDOWN, [25, 9, 7.9]) == ["emergency", "warning", "ok"]


def test_it_holds_on_only_the_milder_tiers_of_the_firing_ones_direction() -> None:
    # A falling win rate and a rising loss count: firing on the rising one never holds
    # the falling one on by its clear value (its value was never passed).
    spec = RuleSpec(
        RuleKind.THRESHOLD,
        (Threshold(WARNING, LT, 5, clear_value=7), Threshold(EMERGENCY, GT, 20, clear_value=18)),
    )
    assert walk(spec, [25, 6]) == ["emergency", "ok"]
    assert walk(spec, [4, 6]) == ["warning", "warning"]


def test_it_lets_a_worse_tier_override_the_firing_one() -> None:
    result = evaluate(DRAWDOWN, [Point(NOW, 25)], now=NOW, firing=DRAWDOWN_WARNING)
    assert result.threshold is DRAWDOWN.ordered_thresholds[0]
    assert result.severity is EMERGENCY


def test_it_applies_hysteresis_to_falling_values() -> None:
    win_rate = RuleSpec(RuleKind.THRESHOLD, (Threshold(WARNING, LT, 40, clear_value=45),))
    # 39 < 40 fires; 43 < 45 holds on; 46 releases.
    assert walk(win_rate, [39, 43, 46]) == ["warning", "warning", "ok"]


def test_it_uses_the_rules_current_threshold_for_the_firing_severity() -> None:
    # The alert fired on an older WARNING (clear 2); the rule now clears at 8.
    stale = Threshold(WARNING, GT, 12, clear_value=2)
    result = evaluate(DRAWDOWN, [Point(NOW, 7.5)], now=NOW, firing=stale)
    assert result.status == "ok"
    held = evaluate(DRAWDOWN, [Point(NOW, 8.5)], now=NOW, firing=stale)
    assert held.threshold is DRAWDOWN_WARNING


def test_it_ignores_a_firing_severity_the_rule_no_longer_has() -> None:
    removed = Threshold(CRITICAL, GT, 5, clear_value=1)
    assert evaluate(DRAWDOWN, [Point(NOW, 9)], now=NOW, firing=removed).status == "ok"


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"thresholds": ()}, "RuleSpec.thresholds: a rule needs at least one threshold"),
        (
            {"thresholds": (Threshold(WARNING, GT, 1), Threshold(WARNING, GT, 2))},
            "RuleSpec.thresholds: more than one warning threshold",
        ),
        ({"min_samples": -1}, "RuleSpec.min_samples must be >= 0"),
        ({"window": timedelta(0)}, "RuleSpec.window must be positive"),
        ({"kind": "metric"}, "RuleSpec.kind: 'metric' is not a RuleKind"),
        ({"aggregation": "median"}, "RuleSpec.aggregation: 'median' is not a Aggregation"),
    ],
)
def test_it_refuses_a_bad_rule_naming_the_field(options: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"kind": "threshold", "thresholds": (Threshold(WARNING, GT, 1),)}
    with pytest.raises(ValueError, match=re.escape(message)):
        RuleSpec(**(fields | options))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((WARNING, GT, math.nan), "Threshold.value must be a finite number"),
        ((WARNING, GT, "ten"), "Threshold.value must be a number"),
        ((WARNING, GT, 10, math.inf), "Threshold.clear_value must be a finite number"),
        ((WARNING, GT, 10, 12), "Threshold.clear_value 12.0 must be <= value 10.0 for >"),
        ((WARNING, LTE, 40, 35), "Threshold.clear_value 35.0 must be >= value 40.0 for <="),
        ((WARNING, Comparison.EQ, 1, 1), "Threshold.clear_value is not allowed with =="),
        ((WARNING, "=>", 1), "Threshold.comparison: '=>' is not a Comparison"),
        ((35, GT, 1), "Threshold.severity: 35 is not a Severity"),
    ],
)
def test_it_refuses_a_bad_threshold_naming_the_field(
    arguments: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Threshold(*arguments)  # type: ignore[arg-type]


def test_it_refuses_points_it_could_not_judge() -> None:
    with pytest.raises(ValueError, match=re.escape("Point.ts must be timezone-aware")):
        Point(datetime(2024, 1, 3), 1)
    with pytest.raises(ValueError, match=re.escape("Point.value must be a finite number")):
        Point(NOW, math.inf)


def test_it_takes_values_as_the_database_gives_them() -> None:
    threshold = Threshold(30, ">", Decimal("10.5"), Decimal(8))  # type: ignore[arg-type]
    assert threshold == Threshold(WARNING, GT, 10.5, 8.0)
    assert type(threshold.value) is float
    assert type(Point(NOW, Decimal("1.25")).value) is float  # type: ignore[arg-type]
    spec = RuleSpec("absence", [threshold], aggregation="p99")  # type: ignore[arg-type]
    assert (spec.kind, spec.aggregation, spec.thresholds) == (
        RuleKind.ABSENCE,
        Aggregation.P99,
        (threshold,),
    )
    assert str(threshold) == "warning > 10.5 (clear 8)"


def test_it_orders_thresholds_most_severe_first() -> None:
    assert DRAWDOWN.ordered_thresholds == (DRAWDOWN_EMERGENCY, DRAWDOWN_WARNING)


# --- M of N --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "m", "n", "held"),
    [
        ([True, False, True], 2, 3, True),
        ([True, False, False, True], 2, 3, False),  # the last 3 are F, F, T
        ([False, True, True, False], 2, 3, True),  # T, T, F
        ([True], 2, 3, False),  # too few entries for 2 Trues
        ([True, True], 2, 5, True),  # judged on the 2 there are
        ([], 1, 1, False),
        ([False, True], 1, 1, True),
    ],
)
def test_it_holds_a_condition_m_of_n(history: list[bool], m: int, n: int, held: bool) -> None:
    assert condition_held(history, m, n) is held
    assert condition_held(deque(history), m, n) is held


@pytest.mark.parametrize(("m", "n"), [(0, 3), (4, 3), (1, 0)])
def test_it_refuses_a_meaningless_m_of_n(m: int, n: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        condition_held([True], m, n)


# --- monotonic check -----------------------------------------------------------------


@pytest.mark.parametrize(
    "thresholds",
    [
        (Threshold(WARNING, GT, 10), Threshold(EMERGENCY, GT, 20)),
        (Threshold(WARNING, LT, 40), Threshold(ERROR, LTE, 20)),
        (Threshold(WARNING, GTE, 10), Threshold(ERROR, GT, 10)),  # same bound, narrower
        (Threshold(WARNING, GT, 90), Threshold(ERROR, LT, 5)),  # one per direction
        (Threshold(WARNING, Comparison.EQ, 1), Threshold(ERROR, Comparison.EQ, 0)),
    ],
)
def test_it_accepts_thresholds_in_severity_order(thresholds: tuple[Threshold, ...]) -> None:
    check_monotonic(RuleSpec(RuleKind.THRESHOLD, thresholds))


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (
            (Threshold(WARNING, GT, 10), Threshold(EMERGENCY, GT, 5)),
            "threshold emergency > 5 is more severe than warning > 10 but not more extreme, "
            "so warning could never show: a more severe > threshold needs a larger value",
        ),
        (
            (Threshold(WARNING, LT, 40), Threshold(CRITICAL, LTE, 50), Threshold(ERROR, LT, 30)),
            "threshold critical <= 50 is more severe than error < 30",
        ),
        ((Threshold(WARNING, GT, 10), Threshold(ERROR, GTE, 10)), "error >= 10"),
        ((Threshold(WARNING, GT, 10), Threshold(ERROR, GT, 10)), "error > 10"),
    ],
)
def test_it_refuses_a_more_severe_threshold_that_is_not_more_extreme(
    thresholds: tuple[Threshold, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_monotonic(RuleSpec(RuleKind.THRESHOLD, thresholds))


# --- properties ----------------------------------------------------------------------

# Extremes often: overflow is where NaN and inf would come from.
values = st.sampled_from([-1.7e308, 1.7e308, 0.0, -0.0, 1.0]) | st.floats(
    allow_nan=False, allow_infinity=False
)
moderate = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def one_direction_rules(draw: st.DrawFn, upward: bool, ordered: bool) -> RuleSpec:
    """A rule whose thresholds all point one way; `ordered`: more severe, more extreme."""
    severities = draw(st.lists(st.sampled_from(Severity), min_size=1, max_size=6, unique=True))
    bounds = draw(st.lists(moderate, min_size=len(severities), max_size=len(severities)))
    if ordered:
        severities.sort()
        bounds = sorted(set(bounds)) if upward else sorted(set(bounds), reverse=True)
        severities = severities[: len(bounds)]
    thresholds = []
    for severity, bound in zip(severities, bounds, strict=False):
        comparison = draw(st.sampled_from([GT, GTE] if upward else [LT, LTE]))
        slack = draw(st.none() | st.floats(min_value=0, max_value=1e3))
        clear = None if slack is None else (bound - slack if upward else bound + slack)
        thresholds.append(Threshold(severity, comparison, bound, clear))
    return RuleSpec(RuleKind.THRESHOLD, tuple(thresholds))


def firing_of(spec: RuleSpec) -> st.SearchStrategy[Threshold | None]:
    return st.none() | st.sampled_from(spec.thresholds)


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("upward", [True, False])
@given(data=st.data())
def test_it_never_gives_a_worse_value_a_lower_severity(
    upward: bool, ordered: bool, data: st.DataObject
) -> None:
    spec = data.draw(one_direction_rules(upward, ordered))
    if ordered:
        check_monotonic(spec)
    firing = data.draw(firing_of(spec))
    milder, worse = sorted(data.draw(st.lists(moderate, min_size=2, max_size=2)))
    if not upward:
        milder, worse = worse, milder
    at_milder = evaluate(spec, [Point(NOW, milder)], now=NOW, firing=firing)
    at_worse = evaluate(spec, [Point(NOW, worse)], now=NOW, firing=firing)
    assert severity_of(at_worse) >= severity_of(at_milder)


thresholds = st.builds(
    Threshold,
    severity=st.sampled_from(Severity),
    comparison=st.sampled_from(Comparison),
    value=moderate,
)
rules = st.builds(
    RuleSpec,
    kind=st.sampled_from(RuleKind),
    thresholds=st.lists(thresholds, min_size=1, max_size=4, unique_by=lambda t: t.severity).map(
        tuple
    ),
    aggregation=st.sampled_from(Aggregation),
    window=(st.sampled_from([60, 300, 600]) | st.integers(1, 600)).map(
        lambda s: timedelta(seconds=s)
    ),
    min_samples=st.integers(min_value=0, max_value=5),
    change_percent=st.booleans(),
)
# Ages in seconds: window edges, ties, points before the window and after NOW.
ages = st.sampled_from([-5, 0, 0, 30, 60, 60, 120, 299, 300, 301, 600, 700]) | st.integers(-5, 700)
points = st.lists(st.builds(Point, ts=ages.map(ago), value=values), max_size=12)


@settings(max_examples=400)
@given(rules, points, st.data())
def test_it_evaluates_deterministically_whatever_the_point_order(
    spec: RuleSpec, sample: list[Point], data: st.DataObject
) -> None:
    firing = data.draw(firing_of(spec))
    shuffled = data.draw(st.permutations(sample))
    first = evaluate(spec, sample, now=NOW, firing=firing)
    assert evaluate(spec, sample, now=NOW, firing=firing) == first
    assert evaluate(spec, shuffled, now=NOW, firing=firing) == first


@settings(max_examples=400)
@given(rules, points, st.data())
def test_it_never_returns_nan_or_infinity(
    spec: RuleSpec, sample: list[Point], data: st.DataObject
) -> None:
    result = evaluate(spec, sample, now=NOW, firing=data.draw(firing_of(spec)))
    assert (result.value is not None) is (result.status in ("breach", "ok"))
    assert result.value is None or math.isfinite(result.value)
    assert (result.threshold is not None) is (result.status == "breach")
    if result.threshold is not None:
        assert result.threshold in spec.thresholds
        assert result.severity is result.threshold.severity


@settings(max_examples=400)
@given(st.sampled_from(Aggregation), points)
def test_it_never_aggregates_to_nan_or_infinity(
    aggregation: Aggregation, sample: list[Point]
) -> None:
    value = aggregate(aggregation, sample, now=NOW, window=WINDOW)
    assert value is None or math.isfinite(value)
    assert aggregate(aggregation, sample[::-1], now=NOW, window=WINDOW) == value
