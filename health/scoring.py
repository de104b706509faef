"""Health statuses, source scores and the system rollup: pure functions on plain values.

One scoring for every reader: the health API (status and safety), the admin dashboard,
a source's page, `tradewatch health` and the system rollup all judge a source here, so
no two of them can disagree. Decisions, in one place:

* Buckets: HEALTHY 80-100, DEGRADED 60-79, UNHEALTHY 30-59, CRITICAL below 30. A score
  is an integer 0-100 (rounded half up, clamped).
* Points: a source's score starts at 100 and loses points per signal; each loss names
  itself as an issue (a problem) or a warning (worth a look), in words an operator reads:
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
* Caps: some states are bad however well everything else goes, and no weighting of
  points can say so (a kill switch on a bot that beats, decides and makes no errors
  scored 100). Each such state holds the source at a status at best: the score is the
  points or the top of that bucket (DEGRADED 79, UNHEALTHY 59, CRITICAL 29), whichever
  is lower, so number, bucket and worst-first order agree. Each cap is an issue; caps
  come first, worst first, then the points' issues:
  - kill switch active (a `kill_switch_activated` newer than any `kill_switch_released`):
    CRITICAL. Nothing trades until a person re-arms it ("kill switch active since 12:03
    UTC (7 min)"); the trading pack alerts CRITICAL on it and the safety view says so.
  - circuit breaker tripped, exchange connection lost (same on/off event pairs):
    UNHEALTHY. The source cannot trade for now, but protects itself or reconnects on
    its own.
  - open positions over the limit: UNHEALTHY; above 80 % of it: DEGRADED. Exchange
    latency over 5 s: DEGRADED.
  - firing alerts on the source, by severity: EMERGENCY or CRITICAL: CRITICAL; ERROR:
    UNHEALTHY; WARNING: DEGRADED ("CRITICAL alert firing: Drawdown — drawdown 22.1 %").
    INFO and DEBUG are news, not problems: they weigh nothing. A rule's severity is the
    operator's own judgement (editable in the admin); the score follows it rather than
    second-guessing it, so a source with a CRITICAL alert firing is never better than
    CRITICAL. What counts:
    - acknowledged alerts count, and say who acknowledged them: acknowledging says
      someone is on it, not that it is fixed;
    - inhibited and silenced alerts count: inhibition and silences hold notifications
      back, the problem is still there (and an inhibiting kill switch caps at CRITICAL
      anyway). Health says how a source is, not who is told;
    - pending alerts (waiting out their `for` duration) are warnings, without a cap;
    - Tradewatch's watchdog is never given to the scoring (the selectors leave it out):
      it fires always, by design, for a dead man's switch outside Tradewatch.
* Alive but not trading (`SignalState`, one per expectation of the source): no order
  past its grace caps at DEGRADED, no market data at UNHEALTHY, a reject rate over 20 %
  of 10+ orders at DEGRADED; decisions keep their points, with the expectation's grace.
  Never for a signal never reported, nor while its schedule is closed.
* Outside the source's schedule (`closed_note`) its heartbeat is not judged: a note
  says "market closed" and when it opens, and costs nothing.
* The safety view's status is the worst of the same caps without the alerts (HEALTHY
  when none holds): a source's status is never better than its safety status.
* Tradewatch's own source (`tradewatch`) sends no heartbeats nor decisions: it is judged
  by its firing alerts alone (`own_score`: beat, workers, queues, failing notifications,
  health checks without a source), and its always-firing INFO watchdog leaves it
  HEALTHY. It joins the rollup only when an alert holds it below HEALTHY: no alert is
  no proof that Tradewatch works (the dead man's switch says that).
* The system rollup is the worst status among what it is given (sources, Tradewatch's
  own problems, checks); UNKNOWN (a check that never ran) does not count; nothing known
  at all is UNKNOWN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from alerts.engine import Severity

from .durations import describe_seconds as describe_seconds
from .durations import describe_since as describe_since


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


@dataclass(frozen=True)
class ScoreLimits:
    """Where a source's signals turn into problems (the SPEC's defaults)."""

    heartbeat_seconds: float = 300
    decision_seconds: float = 1800
    consecutive_errors: int = 3
    error_rate_issue_pct: float = 5
    error_rate_warning_pct: float = 1
    max_open_positions: int = 0  # 0: no limit
    positions_degraded_pct: float = 80
    exchange_latency_ms: float = 5000
    # Order rejects: over this share of orders, once there are this many in the window.
    reject_rate_pct: float = 20
    reject_min_orders: int = 10


@dataclass(frozen=True)
class OpenAlert:
    """One open (pending or firing) alert on a source, as health reads it."""

    severity: int  # the alerts' severities: 10 DEBUG ... 60 EMERGENCY
    rule: str
    message: str = ""
    firing: bool = True  # False: pending, waiting out its `for` duration
    acknowledged: bool = False
    acknowledged_by: str | None = None
    inhibited: bool = False


@dataclass(frozen=True)
class SignalState:
    """One "alive but not trading" signal of a source (`metrics.signals`), as read now.

    `silent_for`: seconds since it was last seen, counted from its schedule's opening at
    the earliest (None: never reported, so never judged); `grace`: the silence allowed
    (seconds); `open`: its schedule is open now (closed: not judged); `scheduled`: it
    has a schedule other than always (its texts say "during the session"). Order
    rejects: `rejected` of `orders` in its window.
    """

    signal: str
    silent_for: float | None = None
    grace: float = 0.0
    open: bool = True
    scheduled: bool = False
    rejected: int = 0
    orders: int = 0


@dataclass(frozen=True)
class SourceSignals:
    """What is known of one source right now; None: never seen / not reported."""

    heartbeat_age: float | None = None
    error_rate_pct: float | None = None
    cycles: int | None = None
    since_decision: float | None = None
    consecutive_errors: int | None = None
    # States that hold since a moment (None: not holding), and when they were read.
    read_at: datetime | None = None
    kill_switch_since: datetime | None = None
    breaker_tripped_since: datetime | None = None
    connection_lost_since: datetime | None = None
    open_positions: float | None = None
    exchange_latency_ms: float | None = None
    # The source's open alerts, worst first (the watchdog left out), and how many more.
    alerts: Sequence[OpenAlert] = ()
    more_alerts: int = 0
    # Outside its schedule (a market closed): "market closed, opens ..." (None: open).
    closed_note: str | None = None
    # Its expectations of decisions, orders, market data and order rejects.
    expectations: Sequence[SignalState] = ()


@dataclass(frozen=True)
class Score:
    """A score 0-100, its bucket, and why it is not 100."""

    score: int
    status: Status
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Neither problems nor worth a look, but why something is not judged now
    # ("market closed, opens Mon 14:30 UTC").
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cap:
    """A state that alone holds a source at `status` at best, and says so in `issue`."""

    status: Status
    issue: str


RESPONSIVENESS_WEIGHT: Final = 50
ERROR_RATE_POINTS_PER_PCT: Final = 2.5
ERROR_RATE_WEIGHT: Final = 25
DECISION_WEIGHT: Final = 15
CONSECUTIVE_ERRORS_WEIGHT: Final = 10
# The highest score of each bucket a cap holds a source in.
CEILINGS: Final = {Status.DEGRADED: 79, Status.UNHEALTHY: 59, Status.CRITICAL: 29}
MESSAGE_LENGTH: Final = 160


def alert_cap_status(severity: int) -> Status | None:
    """The status a firing alert of `severity` holds its source at, at best (None: none)."""
    if severity >= Severity.CRITICAL:
        return Status.CRITICAL
    if severity >= Severity.ERROR:
        return Status.UNHEALTHY
    if severity >= Severity.WARNING:
        return Status.DEGRADED
    return None


def position_utilisation(open_positions: float | None, limit: int) -> float | None:
    """Open positions as a percentage of the limit, to 0.1 (None: unknown or no limit)."""
    if open_positions is None or limit <= 0:
        return None
    return round(open_positions / limit * 100, 1)


def safety_caps(signals: SourceSignals, limits: ScoreLimits | None = None) -> list[Cap]:
    """The caps of a source's safety states: kill switch, breaker, positions, exchange."""
    limits = limits or ScoreLimits()
    now = signals.read_at
    caps: list[Cap] = []
    if signals.kill_switch_since is not None:
        since = describe_since(signals.kill_switch_since, now)
        caps.append(Cap(Status.CRITICAL, f"kill switch active {since}"))
    if signals.breaker_tripped_since is not None:
        since = describe_since(signals.breaker_tripped_since, now)
        caps.append(Cap(Status.UNHEALTHY, f"circuit breaker tripped {since}"))
    if signals.connection_lost_since is not None:
        since = describe_since(signals.connection_lost_since, now)
        caps.append(Cap(Status.UNHEALTHY, f"exchange connection lost {since}"))
    positions, limit = signals.open_positions, limits.max_open_positions
    utilisation = position_utilisation(positions, limit)
    if positions is not None and utilisation is not None:
        if utilisation > 100:
            caps.append(
                Cap(Status.UNHEALTHY, f"{positions:g} open positions, over the limit of {limit}")
            )
        elif utilisation > limits.positions_degraded_pct:
            caps.append(
                Cap(Status.DEGRADED, f"positions at {utilisation:g} % of the limit of {limit}")
            )
    latency = signals.exchange_latency_ms
    if latency is not None and latency > limits.exchange_latency_ms:
        caps.append(
            Cap(
                Status.DEGRADED,
                f"exchange latency {latency:.0f} ms (limit {limits.exchange_latency_ms:.0f} ms)",
            )
        )
    return _worst_first(caps)


def _severity_label(severity: int) -> str:
    try:
        return Severity(severity).name
    except ValueError:
        return f"severity {severity}"


def describe_alert(alert: OpenAlert) -> str:
    """An open alert in one line: "CRITICAL alert firing: Drawdown — drawdown 22.1 %"."""
    state = "firing" if alert.firing else "pending"
    text = f"{_severity_label(alert.severity)} alert {state}: {alert.rule}"
    message = alert.message.strip()
    if message and message != alert.rule:
        if len(message) > MESSAGE_LENGTH:
            message = message[: MESSAGE_LENGTH - 1].rstrip() + "\u2026"
        text += f" \u2014 {message}"
    notes = []
    if alert.acknowledged:
        notes.append(f"acknowledged by {alert.acknowledged_by}" if alert.acknowledged_by
                     else "acknowledged")  # fmt: skip
    if alert.inhibited:
        notes.append("inhibited")
    return f"{text} ({', '.join(notes)})" if notes else text


def alert_caps(alerts: Sequence[OpenAlert], more_alerts: int = 0) -> tuple[list[Cap], list[str]]:
    """The caps of firing alerts (WARNING and up), and warnings for pending ones."""
    caps: list[Cap] = []
    warnings: list[str] = []
    for alert in alerts:
        status = alert_cap_status(alert.severity)
        if status is None:
            continue  # INFO and DEBUG: news, not problems
        if alert.firing:
            caps.append(Cap(status, describe_alert(alert)))
        else:
            warnings.append(describe_alert(alert))
    if more_alerts > 0:
        warnings.append(f"{more_alerts} more open alert{'s' if more_alerts > 1 else ''}")
    return _worst_first(caps), warnings


def _worst_first(caps: list[Cap]) -> list[Cap]:
    return sorted(caps, key=lambda cap: -cap.status.level)


def _capped(points: float, caps: list[Cap], issues: list[str], warnings: list[str]) -> Score:
    score = clamp_score(points)
    status = bucket(score)
    worst_cap = worst(cap.status for cap in caps)
    if worst_cap.level > status.level:
        score, status = min(score, CEILINGS[worst_cap]), worst_cap
    ordered = _worst_first(caps)
    return Score(score, status, [*(cap.issue for cap in ordered), *issues], warnings)


def safety_status(signals: SourceSignals, limits: ScoreLimits | None = None) -> Score:
    """The safety view's verdict: the worst of the safety caps (HEALTHY when none holds).

    Its `score` is the top of that bucket; its issues are the caps, worst first.
    """
    caps = safety_caps(signals, limits)
    return _capped(100, caps, [], [])


def own_score(alerts: Sequence[OpenAlert], more_alerts: int = 0) -> Score:
    """Tradewatch's own source: judged by its firing alerts alone (the watchdog left out)."""
    caps, warnings = alert_caps(alerts, more_alerts)
    return _capped(100, caps, [], warnings)


def source_score(signals: SourceSignals, limits: ScoreLimits | None = None) -> Score:
    """Score one source: points for its signals, capped by its worst states and alerts."""
    limits = limits or ScoreLimits()
    penalty = 0.0
    issues: list[str] = []
    warnings: list[str] = []

    age = signals.heartbeat_age
    notes = [signals.closed_note] if signals.closed_note else []
    by_signal = {state.signal: state for state in signals.expectations}
    if signals.closed_note:
        pass  # outside its schedule: a quiet source is "market closed", not lapsed
    elif age is None:
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
    decision = by_signal.get(DECISION)
    decision_limit = decision.grace if decision is not None else limits.decision_seconds
    during = " during the session" if decision is not None and decision.scheduled else ""
    if decision is not None and not decision.open:
        pass  # its schedule is closed: no decision is due
    elif since is None:
        warnings.append("no decision or trade recorded yet")
    elif since > decision_limit:
        penalty += DECISION_WEIGHT
        issues.append(
            f"no decision for {describe_seconds(since)}{during} "
            f"(limit {describe_seconds(decision_limit)})"
        )
    elif since > decision_limit / 2:
        penalty += 5
        warnings.append(f"last decision {describe_seconds(since)} ago")

    errors = signals.consecutive_errors or 0
    if errors >= limits.consecutive_errors:
        penalty += CONSECUTIVE_ERRORS_WEIGHT
        issues.append(f"{errors} consecutive errors (limit {limits.consecutive_errors})")
    elif errors > 0:
        penalty += 3 * errors
        warnings.append(f"{errors} consecutive error{'s' if errors > 1 else ''}")

    caps, alert_warnings = alert_caps(signals.alerts, signals.more_alerts)
    score = _capped(
        100 - penalty,
        [*safety_caps(signals, limits), *signal_caps(signals.expectations, limits), *caps],
        issues,
        [*warnings, *alert_warnings],
    )
    return Score(score.score, score.status, score.issues, score.warnings, notes)


DECISION: Final = "decision"
# Signal -> (what an operator calls it, the status its lapse holds the source at).
SIGNAL_CAPS: Final = {
    "order": ("order", Status.DEGRADED),
    "market_data": ("market data", Status.UNHEALTHY),
}


def signal_caps(states: Sequence[SignalState], limits: ScoreLimits | None = None) -> list[Cap]:
    """The caps of lapsed "alive but not trading" signals (decisions score as points).

    Only while each one's schedule is open, and only for signals the source reported at
    least once: "no order for 42 min during the session (limit 30 min)".
    """
    limits = limits or ScoreLimits()
    caps: list[Cap] = []
    for state in states:
        if not state.open:
            continue
        during = " during the session" if state.scheduled else ""
        if state.signal in SIGNAL_CAPS:
            if state.silent_for is None or state.silent_for <= state.grace:
                continue
            noun, status = SIGNAL_CAPS[state.signal]
            caps.append(
                Cap(
                    status,
                    f"no {noun} for {describe_seconds(state.silent_for)}{during} "
                    f"(limit {describe_seconds(state.grace)})",
                )
            )
        elif state.signal == "order_rejects" and state.orders >= limits.reject_min_orders:
            rate = state.rejected / state.orders * 100
            if rate > limits.reject_rate_pct:
                caps.append(
                    Cap(
                        Status.DEGRADED,
                        f"{rate:.0f} % of orders rejected ({state.rejected} of {state.orders} "
                        f"in {describe_seconds(state.grace)}{during}, limit "
                        f"{limits.reject_rate_pct:g} %)",
                    )
                )
    return _worst_first(caps)
