"""Replaying a rule over stored history, as the live engine would have judged it.

At each instant the live engine would have evaluated the source (each arrival of data
that makes it evaluate, and each of beat's ticks), every series the rule judges is
handed to the same code as in production: `judging.Subject.judge` (the engine),
`judging.verdict` (hysteresis, guard, M-of-N), and the lifecycle's decisions
(`alerts.transitions`, through `timeline.Timeline`). Instants where no threshold can
trigger while no alert is open are skipped in bulk (`windows`), which is what makes a
month of 1 s samples take seconds. The rule's schedules gate it as live (`sessions`),
and the signals of "alive but not trading" are read from stored events, trades and
samples as live (`signals`). Nothing is written: not an alert, not a
notification, not an M-of-N history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from alerts import engine
from alerts.aggregations import Aggregation
from alerts.evaluation import (
    enabled_rules,
    metric_names_read,
    rules_reading,
    spec_build,
    with_thresholds,
)
from alerts.judging import labels_match
from alerts.loading import (
    EVENT_PREFIX,
    HEARTBEAT,
    KILL_SWITCH_OFF,
    KILL_SWITCH_ON,
    aggregated_in_sql,
)
from alerts.models import Alert, Rule
from alerts.sessions import expectation_of, timetables_of
from metrics import signals
from metrics.models import MetricSeries, Source
from metrics.schedules import ExpectationSpec, ScheduleBook, schedule_book

from . import data as stored
from .buckets import Chart, chart_of
from .clocks import Age
from .series import SeriesReplay
from .sessions import session_times
from .signals import SignalHistory, signal_history, signal_judge
from .timeline import Routing, Timeline
from .windows import (
    Aggregated,
    Anomaly,
    Change,
    Ints,
    LastValue,
    Occurrences,
    Rate,
    SeriesJudge,
    Windows,
    window_micros,
    window_slices,
)

Progress = Callable[[float], None]
State = Alert.State

# Rate of change looks this far before its window too (`alerts.loading`).
CHANGE_REACH: Final = timedelta(minutes=5)
WINDOWED_KINDS: Final = {Rule.Kind.RATE_OF_CHANGE, Rule.Kind.ANOMALY}


class BacktestRefused(ValueError):
    """The backtest cannot answer this question; `field` names what is at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Run:
    """One set of thresholds to judge by: the saved ones (per-source overrides applied)
    or an edit (`thresholds`, the same for every source)."""

    label: str
    thresholds: tuple[engine.Threshold, ...] | None = None


@dataclass
class RunResult:
    run: Run
    timeline: Timeline
    judged: int = 0


@dataclass
class Replay:
    """Everything a backtest found."""

    rule: Rule
    sources: list[Source]
    start: datetime
    end: datetime
    runs: list[RunResult]
    charts: list[Chart] = field(default_factory=list)
    instants: int = 0
    samples: int = 0
    beat_seconds: float = 15.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def backtest_rule(rule_id: int) -> Rule:
    """The rule with its thresholds and overrides; `BacktestRefused` when it cannot be
    replayed."""
    rule = with_thresholds(Rule.objects.filter(pk=rule_id)).first()
    if rule is None:
        raise BacktestRefused("rule", f"No rule with id {rule_id}.")
    if rule.kind == Rule.Kind.HEALTH:
        raise BacktestRefused(
            "rule", "Health rules follow health checks, whose history is not replayable."
        )
    if rule.kind == Rule.Kind.ABSENCE and rule.metric == HEARTBEAT:
        raise BacktestRefused(
            "rule", "Heartbeats are kept as the newest only: a heartbeat rule has no history "
            "to replay.",
        )  # fmt: skip
    return rule


def default_sources(rule: Rule) -> list[Source]:
    """The enabled sources the rule applies to."""
    return [
        source
        for source in Source.objects.filter(enabled=True).prefetch_related("tags").order_by("name")
        if rule.applies_to(source.pk, {tag.pk for tag in source.tags.all()})
    ]


def beat_interval() -> timedelta:
    """How often beat evaluates every source (its schedule entry, else 15 s)."""
    from django_celery_beat.models import PeriodicTask

    task = (
        PeriodicTask.objects.filter(task="alerts.tasks.evaluate_all_sources", enabled=True)
        .select_related("interval")
        .first()
    )
    if task is None or task.interval is None:
        return timedelta(seconds=15)
    return timedelta(seconds=task.interval.every * _PERIOD_SECONDS.get(task.interval.period, 1))


_PERIOD_SECONDS: Final = {"days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}


def rule_replay(
    *,
    rule: Rule,
    sources: Sequence[Source],
    start: datetime,
    end: datetime,
    runs: Sequence[Run],
    routing: Routing,
    progress: Progress | None = None,
    chart_buckets: int = 480,
) -> Replay:
    """Replay `rule` (judged by each of `runs`) on `sources` over [start, end]."""
    started = time.perf_counter()
    every = beat_interval()
    tag_ids = {source.pk: {tag.pk for tag in source.tags.all()} for source in sources}
    top = {
        run.label: max(
            (int(t.severity) for t in run.thresholds)
            if run.thresholds is not None
            else (t.severity for t in rule.thresholds.all()),
            default=30,
        )
        for run in runs
    }
    results = [
        RunResult(
            run, Timeline(rule, top_severity=top[run.label], routing=routing, tag_ids=tag_ids)
        )
        for run in runs
    ]
    found = Replay(rule, list(sources), start, end, results, beat_seconds=every.total_seconds())
    found.notes.append(
        "The period starts with no alert open, and nobody acknowledges, resolves or "
        "silences anything in it: repeats go on until an alert resolves."
    )
    if rule.inhibited_by == Rule.InhibitedBy.HEARTBEAT:
        found.notes.append(
            "Inhibition by a firing heartbeat alert is not replayed (heartbeats are kept as "
            "the newest only): alerts are shown as if never inhibited."
        )
    reads = frozenset(metric_names_read(rule.kind, rule.metric, rule.guard_metric))
    book = schedule_book()
    for position, source in enumerate(sources):
        expectation = expectation_of(rule, source, book)
        if expectation is not None and not expectation.enabled:
            found.notes.append(
                f"{source.name}'s expectation of {signals.NOUNS[expectation.signal]} is "
                "switched off: the rule does not judge it."
            )
            continue
        source_part = _SourceReplay(
            rule, source, start, end, every, reads, chart_buckets, book=book,
            expectation=expectation,
        )  # fmt: skip
        found.notes += source_part.notes
        found.samples += source_part.samples
        found.instants += len(source_part.times)
        found.charts += source_part.charts

        def report(fraction: float, position: int = position) -> None:
            if progress is not None:
                progress((position + fraction) / max(1, len(sources)))

        source_part.judge_all(results, report)
    found.seconds = time.perf_counter() - started
    if progress is not None:
        progress(1.0)
    return found


@dataclass
class _Loaded:
    """One series (or the events) a judge is built on, before the instants are known."""

    labels: dict[str, str]
    labels_key: str
    ts: stored.Micros
    values: stored.Floats
    since: int = 0


class _SourceReplay:
    """One source: its instants, the series the rule judges there, guard and inhibition."""

    def __init__(
        self,
        rule: Rule,
        source: Source,
        start: datetime,
        end: datetime,
        every: timedelta,
        reads: frozenset[str],
        chart_buckets: int,
        *,
        book: ScheduleBook,
        expectation: ExpectationSpec | None,
    ) -> None:
        self.rule, self.source, self.reads = rule, source, reads
        self.expectation = expectation
        self.history: SignalHistory | None = None
        self.samples = 0
        self.charts: list[Chart] = []
        self.notes: list[str] = []
        self.start_us, self.end_us = stored.micros(start), stored.micros(end)
        loaded, known = self._load(start, end)
        inside = [part.ts[(part.ts > self.start_us) & (part.ts <= self.end_us)] for part in loaded]
        # The instants the live engine judges this rule: after an arrival of a metric it
        # reads, after an event, a trade or equity (every rule judged then), on beat.
        arrivals = stored.arrival_times(source.pk, reads, start, end, known=known)
        everything = stored.instants_merge(
            arrivals.every_rule, stored.beat_ticks(start, end, every)
        )
        times = stored.instants_merge(
            arrivals.reading, everything, *([] if rule.kind == Rule.Kind.EVENT else inside)
        )
        self.times = times[(times >= self.start_us) & (times <= self.end_us)]
        # When its schedules let the rule judge this source, as `alerts.sessions.gate` says.
        self.session = session_times(timetables_of(rule, source, book), self.times)
        if self.session is not None:
            self.notes.append(f"{source.name}: judged only in session ({self.session.describe}).")
        # Where every rule was judged (what the data loaded for a pass depends on).
        self.every_rule = (
            np.isin(self.times, everything)
            if rule.kind == Rule.Kind.RATE_OF_CHANGE
            else np.ones(len(self.times), dtype=bool)
        )
        self.judges = [self._judge_of(part) for part in loaded]
        if not self.judges:
            self.notes.append(f"{source.name} has no {rule.metric} series (labels matching).")
        elif self.history is not None and not self._reported():
            noun = signals.NOUNS[self.history.signal]
            self.notes.append(f"{source.name} reported no {noun}: the rule stays silent.")
        self.guard = self._guard(start, end)
        self.inhibited = self._inhibited(start, end)
        for judge in self.judges:
            self.charts.append(
                chart_of(judge, source.pk, self.start_us, self.end_us, chart_buckets)
            )

    def _reported(self) -> bool:
        """Whether the source reported the signal (of a silence) by the period's end."""
        assert self.history is not None
        return self.history.signal not in signals.SILENCES or bool(len(self.history.stamps()))

    # --- what the rule judges here -------------------------------------------------------

    def _load(self, start: datetime, end: datetime) -> tuple[list[_Loaded], list[int]]:
        """The series (or events) the rule judges on this source, and the ids of the
        series read (their samples are arrivals too)."""
        rule = self.rule
        signal = signals.signal_of_metric(rule.metric)
        if signal is not None:
            assert self.expectation is not None
            self.history = signal_history(
                self.source.pk, signal, start, end, window=self.expectation.grace
            )
            self.samples += self.history.samples
            ts = self.history.stamps()
            return [_Loaded({}, "{}", ts, np.ones(len(ts)))], []
        if rule.kind == Rule.Kind.EVENT:
            ts = stored.events_read(self.source.pk, [rule.metric], start - rule.window, end).get(
                rule.metric
            )
            return [_Loaded({}, "{}", ts, np.ones(len(ts)))], []
        if rule.kind == Rule.Kind.ABSENCE and rule.metric.startswith(EVENT_PREFIX):
            kind = rule.metric.removeprefix(EVENT_PREFIX)
            ts = stored.events_read(self.source.pk, [kind], start, end).get(kind)
            return [_Loaded({}, "{}", ts, np.zeros(len(ts)))], []
        series = [
            row
            for row in MetricSeries.objects.filter(source=self.source, name=rule.metric).order_by(
                "labels_key"
            )
            if labels_match(rule.labels, row.labels)
        ]
        known = [row.pk for row in series]
        if rule.kind == Rule.Kind.ABSENCE:
            stamps = [self._read(pk, start, end, newest_before=True)[0] for pk in known]
            ts = stored.instants_merge(*stamps)
            return [_Loaded({}, "{}", ts, np.zeros(len(ts)))], known
        reach = rule.window
        if rule.kind == Rule.Kind.RATE_OF_CHANGE:
            self.reach_every = self._change_reach(enabled_rules())
            self.reach_reading = self._change_reach(rules_reading(enabled_rules(), self.reads))
            reach = max(self.reach_every, self.reach_reading)
        first = stored.first_sample(known)
        loaded = []
        for row in series:
            ts, values = self._read(row.pk, start - reach, end)
            loaded.append(_Loaded(row.labels, row.labels_key, ts, values, first.get(row.pk, 0)))
        return loaded, known

    def _judge_of(self, part: _Loaded) -> SeriesJudge:
        rule, times = self.rule, self.times
        w = window_micros(rule.window.total_seconds())
        lo, hi = window_slices(part.ts, times, w)
        windows = Windows(
            part.labels, part.labels_key, part.ts, np.asarray(part.values, dtype=np.float64), times,
            lo, hi,
            since=part.since,
        )  # fmt: skip
        opened = None if self.session is None else self.session.opened
        if self.history is not None:
            assert self.expectation is not None
            return signal_judge(
                self.history, windows, opened=opened, expectation=self.expectation,
                min_samples=rule.min_samples,
            )  # fmt: skip
        if rule.kind == Rule.Kind.EVENT:
            return Occurrences(windows)
        if rule.kind == Rule.Kind.ABSENCE:
            return Age(windows, opened=opened)
        if rule.kind == Rule.Kind.RATE_OF_CHANGE:

            def reach_from(reach: timedelta) -> Ints:
                found: Ints = np.searchsorted(
                    windows.ts, times - window_micros(reach.total_seconds()), side="right"
                ).astype(np.int64)
                return found

            every, reading = reach_from(self.reach_every), reach_from(self.reach_reading)
            return Change(
                windows, reach_lo=np.where(self.every_rule, every, reading),
                percent=rule.change_percent,
                min_samples=rule.min_samples,
            )  # fmt: skip
        if rule.kind == Rule.Kind.ANOMALY:
            return Anomaly(windows, min_samples=rule.min_samples)
        if rule.aggregation == Rule.Aggregation.LAST:
            return LastValue(windows, window=w, min_samples=rule.min_samples)
        if rule.aggregation == Rule.Aggregation.RATE:
            return Rate(windows, min_samples=rule.min_samples)
        assert aggregated_in_sql(rule)
        return Aggregated(
            windows, aggregation=Aggregation(rule.aggregation), min_samples=rule.min_samples
        )

    def _change_reach(self, judged: Sequence[Rule]) -> timedelta:
        """How far back the live engine loads points for this source when it judges the
        rules `judged` (and this one): the longest window of those that look at points,
        and 5 minutes more (`alerts.loading`)."""
        present = set(
            MetricSeries.objects.filter(source=self.source).values_list("name", flat=True)
        )
        windows = [
            other.window
            for other in [*judged, self.rule]
            if other.metric in present
            and (
                other.kind in WINDOWED_KINDS
                or (
                    other.kind == Rule.Kind.THRESHOLD
                    and other.aggregation != Rule.Aggregation.LAST
                    and not aggregated_in_sql(other)
                )
            )
        ]
        return max(windows, default=self.rule.window) + CHANGE_REACH

    def _read(
        self, series_id: int, after: datetime, end: datetime, *, newest_before: bool = False
    ) -> tuple[stored.Micros, stored.Floats]:
        ts, values = stored.samples_read(series_id, after, end)
        self.samples += len(ts)
        if newest_before:
            older = stored.newest_before(series_id, after)
            if older is not None:
                ts = np.concatenate(([older[0]], ts))
                values = np.concatenate(([older[1]], values))
        return ts, values

    def _guard(self, start: datetime, end: datetime) -> stored.Floats | None:
        """The guard metric's newest value at each instant (NaN: none yet)."""
        rule = self.rule
        if not rule.guard_metric:
            return None
        row = MetricSeries.objects.filter(
            source=self.source, name=rule.guard_metric, labels_key="{}"
        ).first()
        if row is None:
            return np.full(len(self.times), np.nan)
        ts, values = self._read(row.pk, start, end, newest_before=True)
        if not len(ts):
            return np.full(len(self.times), np.nan)
        index = np.searchsorted(ts, self.times, side="right") - 1
        return np.where(index >= 0, values[np.maximum(index, 0)], np.nan)

    def _inhibited(self, start: datetime, end: datetime) -> npt.NDArray[np.bool_] | None:
        """Whether the source's kill switch was active at each instant (kill-switch rules)."""
        if self.rule.inhibited_by != Rule.InhibitedBy.KILL_SWITCH:
            return None
        stamps = stored.events_read(self.source.pk, [KILL_SWITCH_ON, KILL_SWITCH_OFF], start, end)

        def newest(kind: str) -> stored.Micros:
            ts = stamps.get(kind)
            at = np.searchsorted(ts, self.times, side="right") - 1
            return np.where(at >= 0, ts[np.maximum(at, 0)] if len(ts) else 0, -1)

        on, off = newest(KILL_SWITCH_ON), newest(KILL_SWITCH_OFF)
        active: npt.NDArray[np.bool_] = (on >= 0) & ((off < 0) | (off < on))
        return active

    # --- judging -------------------------------------------------------------------------

    def judge_all(self, results: Sequence[RunResult], report: Callable[[float], None]) -> None:
        parts = max(1, len(results) * len(self.judges))
        done = 0
        for result in results:
            spec = spec_build(self.rule, self.source.pk, result.run.thresholds)
            for judge in self.judges:
                if spec is not None:

                    def partial(fraction: float, done: int = done) -> None:
                        report((done + fraction) / parts)

                    series = SeriesReplay(
                        self.rule, self.source.pk, self.times, result.timeline, spec, judge,
                        guard=self.guard, inhibited=self.inhibited, session=self.session,
                    )  # fmt: skip
                    result.judged += series.run(partial)
                done += 1
                report(done / parts)
