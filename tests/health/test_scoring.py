"""Scores, buckets and the rollup on hand-worked examples (pure, no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from health.scoring import (
    OpenAlert,
    Score,
    ScoreLimits,
    SignalState,
    SourceSignals,
    Status,
    bucket,
    describe_seconds,
    describe_since,
    own_score,
    safety_status,
    source_score,
    system_rollup,
)

NOW = datetime(2026, 3, 2, 12, 10, tzinfo=UTC)
WELL: dict[str, Any] = {"heartbeat_age": 10.0, "since_decision": 60.0, "read_at": NOW}  # 100
EMERGENCY, CRITICAL, ERROR, WARNING, INFO = 60, 50, 40, 30, 20


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


def test_it_says_since_when_a_state_holds() -> None:
    assert describe_since(NOW - timedelta(minutes=7), NOW) == "since 12:03 UTC (7 min)"
    assert describe_since(NOW - timedelta(days=2), NOW) == "since 2026-02-28 12:10 UTC (2 d 0 h)"
    assert describe_since(NOW) == "since 2026-03-02 12:10 UTC"


def test_it_caps_a_killed_tripped_disconnected_source_at_critical_naming_each_state() -> None:
    signals = SourceSignals(
        **WELL,
        kill_switch_since=NOW - timedelta(minutes=7),
        breaker_tripped_since=NOW - timedelta(minutes=6),
        connection_lost_since=NOW - timedelta(minutes=5),
    )

    score = source_score(signals)

    assert (score.score, score.status) == (29, Status.CRITICAL)
    assert score.issues == [
        "kill switch active since 12:03 UTC (7 min)",
        "circuit breaker tripped since 12:04 UTC (6 min)",
        "exchange connection lost since 12:05 UTC (5 min)",
    ]
    assert safety_status(signals).status is Status.CRITICAL


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"breaker_tripped_since": NOW}, (59, Status.UNHEALTHY)),
        ({"connection_lost_since": NOW}, (59, Status.UNHEALTHY)),
        ({"open_positions": 11}, (59, Status.UNHEALTHY)),
        ({"open_positions": 9}, (79, Status.DEGRADED)),
        ({"exchange_latency_ms": 6000}, (79, Status.DEGRADED)),
        ({"open_positions": 8, "exchange_latency_ms": 4000}, (100, Status.HEALTHY)),
    ],
)
def test_it_caps_each_safety_state_at_its_status(
    state: dict[str, Any], expected: tuple[int, Status]
) -> None:
    signals = SourceSignals(**WELL, **state)
    score = source_score(signals, ScoreLimits(max_open_positions=10))
    assert (score.score, score.status) == expected


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (EMERGENCY, (29, Status.CRITICAL)),
        (CRITICAL, (29, Status.CRITICAL)),
        (ERROR, (59, Status.UNHEALTHY)),
        (WARNING, (79, Status.DEGRADED)),
        (INFO, (100, Status.HEALTHY)),
        (10, (100, Status.HEALTHY)),
    ],
)
def test_it_caps_a_source_by_the_severity_of_its_firing_alerts(
    severity: int, expected: tuple[int, Status]
) -> None:
    alert = OpenAlert(severity, "Drawdown", "drawdown 22.1 % (limit 20 %)")
    score = source_score(SourceSignals(**WELL, alerts=(alert,)))
    assert (score.score, score.status) == expected
    if severity >= WARNING:
        label = {60: "EMERGENCY", 50: "CRITICAL", 40: "ERROR", 30: "WARNING"}[severity]
        assert score.issues == [
            f"{label} alert firing: Drawdown \u2014 drawdown 22.1 % (limit 20 %)"
        ]
    else:
        assert (score.issues, score.warnings) == ([], [])


def test_it_keeps_the_lower_of_the_points_and_the_cap() -> None:
    dead: dict[str, Any] = {"heartbeat_age": 420.0, "since_decision": 2700.0}  # 35: UNHEALTHY
    warning = OpenAlert(WARNING, "Low win rate")
    score = source_score(SourceSignals(**dead, alerts=(warning,)))
    assert (score.score, score.status) == (35, Status.UNHEALTHY)
    assert score.issues[0] == "WARNING alert firing: Low win rate"  # caps first, then points
    critical = OpenAlert(CRITICAL, "Heartbeat lapsed")
    score = source_score(SourceSignals(**dead, alerts=(warning, critical)))
    assert (score.score, score.status) == (29, Status.CRITICAL)
    assert score.issues[:2] == [  # worst first
        "CRITICAL alert firing: Heartbeat lapsed",
        "WARNING alert firing: Low win rate",
    ]


def test_it_still_counts_acknowledged_and_inhibited_alerts_and_says_so() -> None:
    alerts = (
        OpenAlert(EMERGENCY, "Drawdown", acknowledged=True, acknowledged_by="alice"),
        OpenAlert(ERROR, "Weekly drawdown", acknowledged=True, inhibited=True),
    )
    score = source_score(SourceSignals(**WELL, alerts=alerts))
    assert (score.score, score.status) == (29, Status.CRITICAL)
    assert score.issues == [
        "EMERGENCY alert firing: Drawdown (acknowledged by alice)",
        "ERROR alert firing: Weekly drawdown (acknowledged, inhibited)",
    ]


def test_it_only_warns_of_pending_alerts_and_of_those_not_listed() -> None:
    pending = OpenAlert(EMERGENCY, "Drawdown", "drawdown 21 %", firing=False)
    score = source_score(SourceSignals(**WELL, alerts=(pending,), more_alerts=3))
    assert (score.score, score.status, score.issues) == (100, Status.HEALTHY, [])
    assert score.warnings == [
        "EMERGENCY alert pending: Drawdown \u2014 drawdown 21 %",
        "3 more open alerts",
    ]


def test_it_shortens_a_long_alert_message() -> None:
    alert = OpenAlert(WARNING, "Provider failures", "x" * 500)
    [issue] = source_score(SourceSignals(**WELL, alerts=(alert,))).issues
    assert len(issue) < 220
    assert issue.endswith("x\u2026")


def test_it_judges_tradewatchs_own_source_by_its_alerts_alone() -> None:
    watchdog = OpenAlert(INFO, "Tradewatch watchdog", "Tradewatch is alive")
    assert own_score([watchdog]) == Score(100, Status.HEALTHY, [], [])
    absent = OpenAlert(CRITICAL, "Tradewatch workers absent", "0 workers consume this queue")
    assert own_score([absent, watchdog]) == Score(
        29,
        Status.CRITICAL,
        ["CRITICAL alert firing: Tradewatch workers absent \u2014 0 workers consume this queue"],
        [],
    )


def test_a_sources_status_is_never_better_than_its_safety_status_nor_its_worst_alert() -> None:
    states: list[dict[str, Any]] = [
        {},
        {"kill_switch_since": NOW},
        {"breaker_tripped_since": NOW},
        {"connection_lost_since": NOW},
        {"open_positions": 9.0},
        {"exchange_latency_ms": 9000.0},
    ]
    points_of: list[dict[str, Any]] = [
        {},
        {"heartbeat_age": 999.0},
        {"error_rate_pct": 4.0, "consecutive_errors": 2},
    ]
    severities = [None, INFO, WARNING, ERROR, CRITICAL, EMERGENCY]
    limits = ScoreLimits(max_open_positions=10)
    for state, points, severity in itertools.product(states, points_of, severities):
        alerts = () if severity is None else (OpenAlert(severity, "r"),)
        signals = SourceSignals(**{**WELL, **points, **state}, alerts=alerts)
        score = source_score(signals, limits)
        assert bucket(score.score) is score.status
        assert score.status.level >= safety_status(signals, limits).status.level
        if severity is not None and severity >= CRITICAL:
            assert score.status is Status.CRITICAL


# --- schedules and "alive but not trading" ------------------------------------------------


def test_a_source_outside_its_schedule_is_market_closed_not_lapsed() -> None:
    closed = source_score(
        SourceSignals(
            heartbeat_age=14 * 3600.0, since_decision=60.0, read_at=NOW,
            closed_note="market closed, nyse opens Mon 14:30 UTC (in 2h20m)",
        )
    )  # fmt: skip

    assert (closed.score, closed.status) == (100, Status.HEALTHY)
    assert closed.notes == ["market closed, nyse opens Mon 14:30 UTC (in 2h20m)"]
    assert not closed.issues


@pytest.mark.parametrize(
    ("state", "status", "issue"),
    [
        (
            SignalState("order", silent_for=42 * 60.0, grace=1800.0, scheduled=True),
            Status.DEGRADED,
            "no order for 42 min during the session (limit 30 min)",
        ),
        (
            SignalState("market_data", silent_for=400.0, grace=300.0),
            Status.UNHEALTHY,
            "no market data for 6 min (limit 5 min)",
        ),
        (
            SignalState("order_rejects", grace=900.0, rejected=12, orders=37),
            Status.DEGRADED,
            "32 % of orders rejected (12 of 37 in 15 min, limit 20 %)",
        ),
    ],
)
def test_a_lapsed_signal_holds_the_source_down_and_says_why(
    state: SignalState, status: Status, issue: str
) -> None:
    score = source_score(SourceSignals(**WELL, expectations=(state,)))

    assert score.status == status
    assert score.issues == [issue]


@pytest.mark.parametrize(
    "state",
    [
        SignalState("order", silent_for=None, grace=1800.0),  # never reported
        SignalState("order", silent_for=42 * 60.0, grace=1800.0, open=False),  # closed
        SignalState("market_data", silent_for=200.0, grace=300.0),  # within its grace
        SignalState("order_rejects", grace=900.0, rejected=5, orders=8),  # too few orders
    ],
)
def test_a_signal_never_reported_closed_or_within_its_grace_costs_nothing(
    state: SignalState,
) -> None:
    assert source_score(SourceSignals(**WELL, expectations=(state,))).score == 100


def test_decisions_follow_their_expectation_and_its_session() -> None:
    decision = SignalState("decision", silent_for=42 * 60.0, grace=600.0, scheduled=True)

    late = source_score(
        SourceSignals(heartbeat_age=10.0, since_decision=42 * 60.0, expectations=(decision,))
    )
    resting = source_score(
        SourceSignals(
            heartbeat_age=10.0, since_decision=None,
            expectations=(SignalState("decision", grace=600.0, open=False),),
        )
    )  # fmt: skip

    assert late.issues == ["no decision for 42 min during the session (limit 10 min)"]
    assert (resting.score, resting.warnings) == (100, [])
