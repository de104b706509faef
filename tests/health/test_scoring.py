"""Scores, buckets and the rollup on hand-worked examples (pure, no database)."""

from __future__ import annotations

import pytest

from health.scoring import (
    Score,
    SourceSignals,
    Status,
    bucket,
    describe_seconds,
    source_score,
    system_rollup,
)


@pytest.mark.parametrize(
    ("score", "status"),
    [
        (100, Status.HEALTHY),
        (80, Status.HEALTHY),
        (79.5, Status.HEALTHY),  # rounded half up
        (79, Status.DEGRADED),
        (60, Status.DEGRADED),
        (59, Status.UNHEALTHY),
        (30, Status.UNHEALTHY),
        (29, Status.CRITICAL),
        (0, Status.CRITICAL),
        (-5, Status.CRITICAL),
        (140, Status.HEALTHY),
    ],
)
def test_it_buckets_scores_at_the_edges(score: float, status: Status) -> None:
    assert bucket(score) is status


def test_it_scores_a_healthy_source_100() -> None:
    signals = SourceSignals(
        heartbeat_age=10, error_rate_pct=0, cycles=60, since_decision=60, consecutive_errors=0
    )
    assert source_score(signals) == Score(100, Status.HEALTHY, [], [])


def test_it_names_the_error_rate_over_its_cycles() -> None:
    # 100 - 8.3 x 2.5 = 79.25 -> 79: DEGRADED
    signals = SourceSignals(heartbeat_age=10, error_rate_pct=8.3, cycles=60, since_decision=60)
    score = source_score(signals)
    assert (score.score, score.status) == (79, Status.DEGRADED)
    assert score.issues == ["error rate 8.3 % over 60 cycles"]


def test_it_warns_below_the_issue_level_of_errors() -> None:
    score = source_score(SourceSignals(heartbeat_age=10, error_rate_pct=2, since_decision=1))
    assert (score.score, score.status) == (95, Status.HEALTHY)
    assert score.warnings == ["error rate 2.0 %"]
    assert score.issues == []


def test_it_scores_a_dead_bot_unhealthy_and_a_failing_dead_bot_critical() -> None:
    dead = SourceSignals(heartbeat_age=420, since_decision=2700)
    score = source_score(dead)
    assert (score.score, score.status) == (35, Status.UNHEALTHY)
    assert score.issues == [
        "no heartbeat for 7 min (limit 5 min)",
        "no decision for 45 min (limit 30 min)",
    ]
    failing = SourceSignals(
        heartbeat_age=420, since_decision=2700, error_rate_pct=12, consecutive_errors=3
    )
    score = source_score(failing)
    assert (score.score, score.status) == (0, Status.CRITICAL)
    assert "3 consecutive errors (limit 3)" in score.issues


def test_it_takes_small_amounts_off_for_early_signs() -> None:
    # late heartbeat (-10), late decision (-5), two errors in a row (-6): 79
    signals = SourceSignals(heartbeat_age=200, since_decision=1000, consecutive_errors=2)
    score = source_score(signals)
    assert (score.score, score.status) == (79, Status.DEGRADED)
    assert score.warnings == [
        "last heartbeat 3 min ago",
        "last decision 16 min ago",
        "2 consecutive errors",
    ]


def test_it_does_not_judge_what_was_never_reported() -> None:
    score = source_score(SourceSignals())
    assert (score.score, score.status) == (100, Status.HEALTHY)
    assert score.warnings == ["no heartbeat received yet", "no decision or trade recorded yet"]


def test_it_rolls_up_to_the_worst_known_status() -> None:
    assert system_rollup([Status.HEALTHY, Status.DEGRADED, Status.UNKNOWN]) is Status.DEGRADED
    assert system_rollup([Status.HEALTHY, Status.CRITICAL, Status.UNHEALTHY]) is Status.CRITICAL
    assert system_rollup([Status.UNKNOWN]) is Status.UNKNOWN
    assert system_rollup([]) is Status.UNKNOWN


def test_it_says_durations_in_words() -> None:
    assert describe_seconds(45) == "45 s"
    assert describe_seconds(420) == "7 min"
    assert describe_seconds(3 * 3600 + 20 * 60) == "3 h 20 min"
    assert describe_seconds(50 * 3600) == "2 d 2 h"
