"""Judging one series of one source against one rule, and applying what was found.

`alerts.evaluation` loads the data of many sources at once (`alerts.loading`) and hands
each series a rule looks at to `Pass.judge`: the engine's verdict, then the rule's guard,
M-of-N and a person's resolve that still holds, then the lifecycle (a quiet bulk update
when nothing a person must hear about changed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from metrics import signals
from metrics.models import Source
from metrics.schedules import ExpectationSpec
from metrics.timetables import clock_start

from . import engine
from .lifecycle import Finding, apply_finding, fingerprint, kept_resolved_release, still_kept
from .loading import EVENT_PREFIX, HEARTBEAT, SourceData, aggregated_in_sql
from .models import Rule, RuleSourceState
from .quiet import QuietUpdate, open_alert_of, quiet_update
from .silences import SilenceMatcher, active_silences


@dataclass
class Summary:
    """What one evaluation pass did, for logs and benchmarks."""

    sources: int = 0
    evaluations: int = 0
    applied: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def labels_match(wanted: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


@dataclass(frozen=True)
class Subject:
    """One series a rule judges: its points, or the database's aggregate of its window."""

    labels: dict[str, str]
    labels_key: str
    points: list[engine.Point]
    aggregate: tuple[float | None, int] | None = None

    def judge(
        self, spec: engine.RuleSpec, now: datetime, firing: engine.Threshold | None
    ) -> engine.Evaluation:
        if self.aggregate is not None:
            value, samples = self.aggregate
            return engine.evaluate_aggregate(spec, value, samples, firing=firing)
        return engine.evaluate(spec, self.points, now=now, firing=firing)


def subjects(
    rule: Rule,
    data: SourceData,
    now: datetime,
    *,
    opened_at: datetime | None = None,
    expectation: ExpectationSpec | None = None,
) -> Iterable[Subject]:
    """Each series the rule judges on this source.

    `opened_at`: when the rule's schedules last opened (clocks of silence count from
    there at the earliest); `expectation`: the source's expectation a signal rule
    judges (its grace, or the window of its reject rate).
    """
    if rule.kind == Rule.Kind.EVENT:
        yield Subject({}, "{}", data.events.get(rule.metric, []))
        return
    signal = signals.signal_of_metric(rule.metric)
    if signal == signals.ORDER_REJECTS:
        yield _reject_rate(data, now, opened_at, expectation)
        return
    if rule.kind == Rule.Kind.ABSENCE:
        newest: datetime | None
        if rule.metric == HEARTBEAT:
            if data.heartbeat_seen is None:
                newest = data.heartbeat
            else:
                start = clock_start(data.heartbeat_seen, opened_at)
                newest = None if start is None else start + data.heartbeat_due_after
        elif signal is not None:
            # Due `grace` after the signal was last seen (or after the opening): the
            # value is the seconds overdue, as for heartbeats. Never seen: no data.
            start = clock_start(data.signal_newest.get(signal), opened_at)
            grace = expectation.grace if expectation else signals.DEFAULT_GRACE[signal]
            newest = None if start is None else start + grace
        elif rule.metric.startswith(EVENT_PREFIX):
            newest = clock_start(
                data.newest_event.get(rule.metric.removeprefix(EVENT_PREFIX)), opened_at
            )
        else:
            stamps = [
                row["last_ts"]
                for row in data.series
                if row["name"] == rule.metric
                and row["last_ts"] is not None
                and labels_match(rule.labels, row["labels"])
            ]
            newest = clock_start(max(stamps, default=None), opened_at)
        yield Subject({}, "{}", [engine.Point(min(newest, now), 0.0)] if newest is not None else [])
        return
    in_sql = connection.vendor == "postgresql" and aggregated_in_sql(rule)
    for row in data.series:
        if row["name"] != rule.metric or not labels_match(rule.labels, row["labels"]):
            continue
        if rule.kind == Rule.Kind.THRESHOLD and rule.aggregation == Rule.Aggregation.LAST:
            points = (
                [engine.Point(min(row["last_ts"], now), row["last_value"])]
                if row["last_ts"] is not None and row["last_value"] is not None
                else []
            )
        elif in_sql:
            key = (row["id"], rule.aggregation, rule.window)
            yield Subject(row["labels"], row["labels_key"], [], data.aggregates.get(key, (None, 0)))
            continue
        else:
            points = data.samples.get(row["id"], [])
        yield Subject(row["labels"], row["labels_key"], points)


def _reject_rate(
    data: SourceData,
    now: datetime,
    opened_at: datetime | None,
    expectation: ExpectationSpec | None,
) -> Subject:
    """The order reject rate over the expectation's window (from the opening at the
    earliest), with the orders it is over as its samples."""
    window = expectation.grace if expectation else signals.DEFAULT_GRACE[signals.ORDER_REJECTS]
    start = now - window if opened_at is None else max(now - window, opened_at)

    def counted(event_type: str) -> int:
        return sum(1 for point in data.events.get(event_type, []) if start < point.ts <= now)

    rate, orders = signals.reject_rate(
        counted(signals.ORDER_REJECTED_EVENT), counted(signals.ORDER_SUBMITTED_EVENT)
    )
    return Subject({}, "{}", [], (rate, orders))


def _threshold_of(severity: int, spec: engine.RuleSpec) -> engine.Threshold | None:
    return next((t for t in spec.thresholds if int(t.severity) == severity), None)


def _m_of_n_state(rule: Rule, source_id: int, labels_key: str, now: datetime) -> RuleSourceState:
    state, _ = RuleSourceState.objects.get_or_create(
        rule=rule, source_id=source_id, labels_key=labels_key, defaults={"evaluated_at": now}
    )
    return state


def m_of_n_holding(history: str) -> int | None:
    """The severity whose threshold was on at the last evaluation (None: none was)."""
    last = history[-1:]
    return int(last) * 10 if last not in ("", "0") else None


def m_of_n_record(history: str, severity: int | None, m: int, n: int) -> tuple[str, bool]:
    """`history` with this evaluation recorded (the severity on, or none), and whether the
    condition held in M of the last N."""
    # One character an evaluation: 0 nothing held, else the severity held, in tens.
    mark = "0" if severity is None else str(severity // 10)
    history = (history + mark)[-n:]
    return history, engine.condition_held([c != "0" for c in history], m, n)


def guard_allows(rule: Rule, value: float | None) -> bool:
    """Whether the rule's guard (e.g. trade_count >= 10) allows judging, given the guard
    metric's newest value (None: the source has no such series)."""
    if not rule.guard_metric:
        return True
    minimum = rule.guard_minimum if rule.guard_minimum is not None else 0.0
    return value is not None and value >= minimum


def _guard_passes(rule: Rule, data: SourceData) -> bool:
    """Whether the rule's guard metric allows judging now."""
    if not rule.guard_metric:
        return True
    for row in data.series:
        if row["name"] == rule.guard_metric and row["labels_key"] == "{}":
            return guard_allows(rule, row["last_value"])
    return False


@dataclass(frozen=True)
class Verdict:
    """What one evaluation of a series found, once the rule's guard and M-of-N applied."""

    evaluation: engine.Evaluation
    # Before M-of-N (what the summary counts).
    found: engine.Evaluation
    # The M-of-N history after it (None: the rule has no M-of-N), and whether this
    # evaluation was recorded in it (only breaches and oks are).
    history: str | None = None
    recorded: bool = False


def verdict(
    rule: Rule,
    spec: engine.RuleSpec,
    judge: Callable[[engine.Threshold | None], engine.Evaluation],
    *,
    firing_severity: int | None,
    kept_severity: int | None = None,
    history: str | None = None,
    guard_passes: bool = True,
) -> Verdict:
    """Judge one series: the engine's evaluation (`judge`, given the threshold that holds
    on by hysteresis), then the guard and M-of-N. Pure: the live pass (`Pass.judge`) and
    the backtest (`alerts.backtest`) both decide through it.

    `firing_severity`: the severity of the open alert, while its condition holds (None:
    no alert open, or it cleared and keeps firing for `keep_firing_for`, when its
    thresholds are off: only a new breach turns one on again); `kept_severity`: that of
    an alert a person resolved while the problem goes on; `history`: the M-of-N history
    (None without M-of-N).
    """
    if kept_severity is not None:
        # Judged as if it still fired, so hysteresis decides when it cleared.
        firing = _threshold_of(kept_severity, spec)
    else:
        firing = None if firing_severity is None else _threshold_of(firing_severity, spec)
        if history is not None:
            # A threshold switched on by the last evaluation stays on until its clear
            # value whether or not M of N let it count: with no alert open yet, or
            # above the severity the open alert has (or kept after it cleared).
            holding = m_of_n_holding(history)
            still_on = None if holding is None else _threshold_of(holding, spec)
            if still_on is not None and (
                firing is None or int(still_on.severity) > int(firing.severity)
            ):
                firing = still_on
    evaluation = judge(firing)
    if not guard_passes:
        evaluation = engine.Evaluation(
            status="insufficient_data", value=None, threshold=None,
            severity=None, samples=evaluation.samples,
        )  # fmt: skip
    found = evaluation
    recorded = False
    if history is not None and evaluation.status in ("breach", "ok"):
        assert rule.m_of_n_m is not None
        assert rule.m_of_n_n is not None
        on = int(evaluation.severity) if evaluation.severity is not None else None
        history, held = m_of_n_record(history, on, rule.m_of_n_m, rule.m_of_n_n)
        recorded = True
        if not held and evaluation.status == "breach":
            evaluation = engine.Evaluation(
                status="ok", value=evaluation.value, threshold=None,
                severity=None, samples=evaluation.samples,
            )  # fmt: skip
    return Verdict(evaluation, found, history, recorded)


def opens_or_touches(rule: Rule, evaluation: engine.Evaluation, *, open_alert: bool) -> bool:
    """Whether a finding concerns the lifecycle: an alert is open, or it is a breach (or
    no data under the missing-data policy "alert"). Nothing open and nothing wrong: no
    row to touch."""
    return (
        open_alert
        or evaluation.status == "breach"
        or (evaluation.status == "no_data" and rule.missing_data == Rule.MissingData.ALERT)
    )


def _inhibited(rule: Rule, data: SourceData) -> bool:
    if rule.inhibited_by == Rule.InhibitedBy.KILL_SWITCH:
        return data.kill_switch_active
    if rule.inhibited_by == Rule.InhibitedBy.HEARTBEAT:
        return data.heartbeat_firing
    return False


# metric -> [(time, value)]: where a derived metric was lowest and highest among the
# inputs just derived (`metrics.derived.Derivation.extremes`).
Extremes = Mapping[str, Sequence[tuple[datetime, float]]]


def worse_values(
    rule: Rule, spec: engine.RuleSpec, subject: Subject, extremes: Extremes | None
) -> list[float]:
    """Values of `extremes` a rule on the newest value must judge before it: the highest
    (for > / >= thresholds) and lowest (< / <=) of the metric, where worse than now."""
    if (
        not extremes
        or rule.kind != Rule.Kind.THRESHOLD
        or rule.aggregation != Rule.Aggregation.LAST
        or subject.labels_key != "{}"
        or not subject.points
    ):
        return []
    points = extremes.get(rule.metric)
    if not points:
        return []
    newest = subject.points[-1].value
    comparisons = {t.comparison for t in spec.thresholds}
    worse = []
    if comparisons & {engine.Comparison.GT, engine.Comparison.GTE}:
        highest = max(value for _, value in points)
        if highest > newest:
            worse.append(highest)
    if comparisons & {engine.Comparison.LT, engine.Comparison.LTE}:
        lowest = min(value for _, value in points)
        if lowest < newest:
            worse.append(lowest)
    return worse


def session_end_applied(last_seen: datetime, closed_at: datetime | None) -> bool:
    """Whether an alert followed its rule's missing-data policy already since the close at
    `closed_at`: it was touched at or after the close, which no evaluation in session
    does (a session ends at its close). None (since when closed is not known): not."""
    return closed_at is not None and last_seen >= closed_at


class Pass:
    """One evaluation pass: what it found, and what it put off to the end."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.summary = Summary()
        # Read when a first finding needs them: most evaluations find nothing to apply.
        self.silences: list[SilenceMatcher] | None = None
        self.quiet: list[QuietUpdate] = []

    def out_of_session(
        self,
        source: Source,
        source_data: SourceData,
        rule: Rule,
        closed_at: datetime | None,
    ) -> None:
        """The rule rests on this source (its schedule is closed): an alert of it open
        when the session ended follows the rule's missing-data policy, once (at the
        first evaluation after the close; "keep" leaves it as it is until the rule is
        judged again)."""
        if rule.missing_data == Rule.MissingData.KEEP:
            return
        for subject in subjects(rule, source_data, self.now):
            fp = fingerprint(rule.pk, source.pk, subject.labels_key)
            open_alert = source_data.open_alerts.get(fp)
            if open_alert is None:
                continue
            if session_end_applied(open_alert.last_seen, closed_at):
                continue
            if self.silences is None:
                self.silences = active_silences(self.now)
            apply_finding(
                Finding(
                    rule=rule,
                    source_id=source.pk,
                    labels=subject.labels,
                    labels_key=subject.labels_key,
                    evaluation=engine.Evaluation("no_data", None, None, None, 0),
                    now=self.now,
                    inhibited=_inhibited(rule, source_data),
                    silences=self.silences,
                    source=source,
                    tag_ids=frozenset(source_data.tag_ids),
                )
            )
            self.summary.applied += 1

    def judge(
        self,
        source: Source,
        source_data: SourceData,
        rule: Rule,
        spec: engine.RuleSpec,
        subject: Subject,
        *,
        worse: float | None = None,
    ) -> None:
        """Judge one series (or, with `worse`, that value of it) and apply what it found."""
        now, summary = self.now, self.summary
        labels_key = subject.labels_key
        fp = fingerprint(rule.pk, source.pk, labels_key)
        open_alert = source_data.open_alerts.get(fp)
        kept = None if open_alert else source_data.kept_resolved.get(fp)
        m_of_n = None
        if rule.m_of_n_m is not None:
            m_of_n = _m_of_n_state(rule, source.pk, labels_key, now)

        def judge(firing: engine.Threshold | None) -> engine.Evaluation:
            if worse is None:
                return subject.judge(spec, now, firing)
            return engine.evaluate(spec, [engine.Point(now, worse)], now=now, firing=firing)

        found = verdict(
            rule, spec, judge,
            firing_severity=(
                open_alert.severity
                if open_alert is not None and open_alert.condition_cleared_at is None
                else None
            ),
            kept_severity=None if kept is None else kept.severity,
            history=None if m_of_n is None else m_of_n.history,
            guard_passes=_guard_passes(rule, source_data),
        )  # fmt: skip
        evaluation = found.evaluation
        summary.evaluations += 1
        summary.by_status[found.found.status] += 1
        if m_of_n is not None and found.recorded:
            assert found.history is not None
            m_of_n.history = found.history
            m_of_n.evaluated_at = now
            m_of_n.save(update_fields=["history", "evaluated_at"])
        if kept is not None:
            newest = max((p.ts for p in subject.points), default=None)
            if still_kept(kept, evaluation, newest):
                return  # a person resolved this problem, and it goes on
            kept_resolved_release(alert_id=kept.id)
            del source_data.kept_resolved[fp]
            summary.applied += 1
        if not opens_or_touches(rule, evaluation, open_alert=open_alert is not None):
            return
        if self.silences is None:
            self.silences = active_silences(now)
        finding = Finding(
            rule=rule,
            source_id=source.pk,
            labels=subject.labels,
            labels_key=labels_key,
            evaluation=evaluation,
            now=now,
            inhibited=_inhibited(rule, source_data),
            silences=self.silences,
            source=source,
            tag_ids=frozenset(source_data.tag_ids),
            known_closed=open_alert is None,
        )
        summary.applied += 1
        if worse is None and open_alert is not None:
            update = quiet_update(finding, open_alert, source.name)
            if update is not None:
                self.quiet.append(update)
                return
        alert = apply_finding(finding)
        if worse is not None:
            # The newest value is judged next, against what this judgement left.
            source_data.open_alerts.pop(fp, None)
            if alert is not None and alert.is_open:
                source_data.open_alerts[fp] = open_alert_of(alert)
