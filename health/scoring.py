"""Health statuses, source scores and the system rollup: pure functions on plain values.

Decisions, in one place:

* Buckets: HEALTHY 80-100, DEGRADED 60-79, UNHEALTHY 30-59, CRITICAL below 30. A score
  is an integer 0-100 (rounded half up, clamped).
* A source's score starts at 100 and loses points per signal; each loss names itself
  as an issue (a problem) or a warning (worth a look), in words an operator reads:
  - responsiveness, up to 50: no heartbeat within 300 s costs 50 (an issue); a
    heartbeat older than half of that costs 10 (a warning). A source that never sent
    one is not judged (a warning says so): many systems only push metrics.
  - error rate, up to 25: 2.5 points per percent of cycles in error; 5 % and above
    is an issue, 1 % and above a warning ("error rate 8.3 % over 60 cycles").
  - time since the last decision, up to 15: more than 30 min costs 15 (an issue),
    more than half of that 5 (a warning).
  - consecutive errors, up to 10: 3 or more cost 10 (an issue); 1 or 2 cost 3 each
    (a warning).
  A dead bot (heartbeat and decisions lapsed) scores 35: UNHEALTHY; add a 10 % error
  rate and 3 errors in a row and it is CRITICAL (0).
* The system rollup is the worst status among what it is given (sources and checks);
  UNKNOWN (a check that never ran) does not count; nothing known at all is UNKNOWN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class Status(StrEnum):
    """How well something is, from best to worst; UNKNOWN before anything was seen."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    CRITICAL = "critical"

    @property
    def level(self) -> int:
        """0 healthy ... 3 critical (-1 unknown): the value health alert rules compare."""
        return _LEVELS[self]

    @property
    def label(self) -> str:
        return self.value.upper()

    @property
    def is_failure(self) -> bool:
        """A hard failure: the target is down or wrong (what the circuit breaker counts)."""
        return self in (Status.UNHEALTHY, Status.CRITICAL)


_LEVELS: Final = {
    Status.UNKNOWN: -1,
    Status.HEALTHY: 0,
    Status.DEGRADED: 1,
    Status.UNHEALTHY: 2,
    Status.CRITICAL: 3,
}

# The score a probe result gets when its check does not compute a finer one.
STATUS_SCORE: Final = {
    Status.HEALTHY: 100,
    Status.DEGRADED: 70,
    Status.UNHEALTHY: 45,
    Status.CRITICAL: 0,
    Status.UNKNOWN: 0,
}


def bucket(score: float) -> Status:
    """The status of a score: HEALTHY 80-100, DEGRADED 60-79, UNHEALTHY 30-59, CRITICAL < 30."""
    score = clamp_score(score)
    if score >= 80:
        return Status.HEALTHY
    if score >= 60:
        return Status.DEGRADED
    if score >= 30:
        return Status.UNHEALTHY
    return Status.CRITICAL


def clamp_score(score: float) -> int:
    """An integer 0-100, rounded half up (79.5 is 80)."""
    if math.isnan(score):
        return 0
    return max(0, min(100, math.floor(score + 0.5)))


def worst(statuses: Iterable[Status]) -> Status:
    """The worst known status, or UNKNOWN when none is known."""
    known = [status for status in statuses if status is not Status.UNKNOWN]
    return max(known, key=lambda s: s.level, default=Status.UNKNOWN)


def system_rollup(statuses: Iterable[Status]) -> Status:
    """The whole system's status: the worst of its sources and checks."""
    return worst(statuses)


def describe_seconds(seconds: float) -> str:
    """A duration in words an operator reads at a glance: "45 s", "7 min", "3 h 20 min"."""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


@dataclass(frozen=True)
class ScoreLimits:
    """Where a source's signals turn into problems (the SPEC's defaults)."""

    heartbeat_seconds: float = 300
    decision_seconds: float = 1800
    consecutive_errors: int = 3
    error_rate_issue_pct: float = 5
    error_rate_warning_pct: float = 1


@dataclass(frozen=True)
class SourceSignals:
    """What is known of one source right now; None: never seen / not reported."""

    heartbeat_age: float | None = None
    error_rate_pct: float | None = None
    cycles: int | None = None
    since_decision: float | None = None
    consecutive_errors: int | None = None


@dataclass(frozen=True)
class Score:
    """A score 0-100, its bucket, and why it is not 100."""

    score: int
    status: Status
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


RESPONSIVENESS_WEIGHT: Final = 50
ERROR_RATE_POINTS_PER_PCT: Final = 2.5
ERROR_RATE_WEIGHT: Final = 25
DECISION_WEIGHT: Final = 15
CONSECUTIVE_ERRORS_WEIGHT: Final = 10


def source_score(signals: SourceSignals, limits: ScoreLimits | None = None) -> Score:
    """Score one source from its signals (see the module docstring for the points)."""
    limits = limits or ScoreLimits()
    penalty = 0.0
    issues: list[str] = []
    warnings: list[str] = []

    age = signals.heartbeat_age
    if age is None:
        warnings.append("no heartbeat received yet")
    elif age > limits.heartbeat_seconds:
        penalty += RESPONSIVENESS_WEIGHT
        issues.append(
            f"no heartbeat for {describe_seconds(age)} "
            f"(limit {describe_seconds(limits.heartbeat_seconds)})"
        )
    elif age > limits.heartbeat_seconds / 2:
        penalty += 10
        warnings.append(f"last heartbeat {describe_seconds(age)} ago")

    rate = signals.error_rate_pct
    if rate is not None and math.isfinite(rate) and rate > 0:
        penalty += min(ERROR_RATE_WEIGHT, rate * ERROR_RATE_POINTS_PER_PCT)
        over = f" over {signals.cycles} cycles" if signals.cycles else ""
        text = f"error rate {rate:.1f} %{over}"
        if rate >= limits.error_rate_issue_pct:
            issues.append(text)
        elif rate >= limits.error_rate_warning_pct:
            warnings.append(text)

    since = signals.since_decision
    if since is None:
        warnings.append("no decision or trade recorded yet")
    elif since > limits.decision_seconds:
        penalty += DECISION_WEIGHT
        issues.append(
            f"no decision for {describe_seconds(since)} "
            f"(limit {describe_seconds(limits.decision_seconds)})"
        )
    elif since > limits.decision_seconds / 2:
        penalty += 5
        warnings.append(f"last decision {describe_seconds(since)} ago")

    errors = signals.consecutive_errors or 0
    if errors >= limits.consecutive_errors:
        penalty += CONSECUTIVE_ERRORS_WEIGHT
        issues.append(f"{errors} consecutive errors (limit {limits.consecutive_errors})")
    elif errors > 0:
        penalty += 3 * errors
        warnings.append(f"{errors} consecutive error{'s' if errors > 1 else ''}")

    score = clamp_score(100 - penalty)
    return Score(score=score, status=bucket(score), issues=issues, warnings=warnings)
