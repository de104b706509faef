"""One series replayed against one set of thresholds, instant by instant.

At each instant the series is judged as `judging.Pass.judge` judges it (the engine through
`judging.Subject`, then `judging.verdict`: hysteresis, guard, M-of-N), and what it finds
goes to the lifecycle's decisions (`timeline.Timeline`). Outside the rule's schedules
nothing is judged, and an alert open when the session ended follows the rule's
missing-data policy once, as `judging.Pass.out_of_session` does. Two shortcuts keep a month of
1 s samples to seconds, each taken only where the answer is certain: instants where no
threshold can trigger while nothing is open are skipped (`windows`), and quiet breaches
of an open alert are applied in bulk (`stretches`), as the live lifecycle's quiet
updates would apply them one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import numpy as np
import numpy.typing as npt

from alerts import engine
from alerts.judging import Subject, guard_allows, opens_or_touches, session_end_applied, verdict
from alerts.lifecycle import more_extreme, repeat_interval
from alerts.models import Alert, Rule
from alerts.thresholds import UPWARD

from . import data as stored
from . import stretches
from .sessions import SessionTimes
from .timeline import ReplayedAlert, Timeline
from .windows import SeriesJudge

State = Alert.State
NO_DATA = engine.Evaluation("no_data", None, None, None, 0)


class SeriesReplay:
    """One series judged against one set of thresholds over the instants of its source."""

    def __init__(
        self,
        rule: Rule,
        source_id: int,
        times: stored.Micros,
        timeline: Timeline,
        spec: engine.RuleSpec,
        judge: SeriesJudge,
        *,
        guard: stored.Floats | None,
        inhibited: npt.NDArray[np.bool_] | None,
        session: SessionTimes | None = None,
    ) -> None:
        self.rule, self.source_id, self.times = rule, source_id, times
        self.timeline, self.spec, self.judge = timeline, spec, judge
        # The guard metric's newest value and the kill switch's state at each instant.
        self.guard, self.inhibited = guard, inhibited
        # When the rule's schedules let it judge the source (None: always).
        self.session = session
        look = judge.candidates(spec)
        if rule.missing_data == Rule.MissingData.ALERT:
            look |= judge.no_data()
        look &= judge.exists()
        if session is not None:
            look &= session.open
        self.ahead = np.flatnonzero(look)
        # Quiet stretches (see `stretches`): only without M-of-N (whose history counts
        # each evaluation) and for rules whose severity is monotonic in the value.
        self.approx = judge.approx()
        self.quiet_ok = (
            self.approx is not None and rule.m_of_n_m is None and stretches.one_direction(spec)
        )
        self.upward = all(t.comparison in UPWARD for t in spec.thresholds)
        self._steady: dict[tuple[int, bool], npt.NDArray[np.int64]] = {}

    def run(self, report: Callable[[float], None]) -> int:
        """Replay the series; return how many instants were judged one by one."""
        rule, times, judge, timeline = self.rule, self.times, self.judge, self.timeline
        source_id = self.source_id
        guard = self.guard
        count = len(times)
        history: str | None = "" if rule.m_of_n_m is not None else None
        alert: ReplayedAlert | None = None
        judged = 0
        index = int(np.searchsorted(times, judge.windows.since, side="left"))
        next_report = time.monotonic() + 0.25
        session = self.session
        while index < count:
            if session is not None and not session.open[index]:
                alert, index = self._out_of_session(alert, index)
                continue
            if alert is None and not (history and history.strip("0")):
                # Nothing open and nothing held: on to the next instant where a threshold
                # could trigger (the engine would say "ok" or no data until then).
                position = int(np.searchsorted(self.ahead, index, side="left"))
                if position >= len(self.ahead):
                    break
                index = int(self.ahead[position])
            elif alert is not None and self.quiet_ok:
                stop = self._quiet_stretch(alert, index)
                if stop != index:
                    index = stop  # (it may stop where the session ends: looked at again)
                    continue
            now = stored.moment(int(times[index]))
            subject = judge.subject(index)

            def judged_at(
                firing: engine.Threshold | None, subject: Subject = subject, now: datetime = now
            ) -> engine.Evaluation:
                return subject.judge(self.spec, now, firing)

            found = verdict(
                rule,
                self.spec,
                judged_at,
                firing_severity=(
                    alert.severity
                    if alert is not None and alert.condition_cleared_at is None
                    else None
                ),
                history=history,
                guard_passes=guard_allows(rule, _value_at(guard, index)),
            )
            history = found.history
            judged += 1
            if opens_or_touches(rule, found.evaluation, open_alert=alert is not None):
                alert = timeline.apply(
                    alert, source_id=source_id, labels=judge.labels, labels_key=judge.labels_key,
                    evaluation=found.evaluation, now=now, inhibited=self._inhibited_at(index),
                )  # fmt: skip
                if alert is not None:
                    timeline.escalate(alert, now)
            index += 1
            if judged % 1024 == 0 and time.monotonic() >= next_report:
                report(index / count)
                next_report = time.monotonic() + 0.25
        return judged

    def _inhibited_at(self, index: int) -> bool:
        return bool(self.inhibited[index]) if self.inhibited is not None else False

    def _out_of_session(
        self, alert: ReplayedAlert | None, index: int
    ) -> tuple[ReplayedAlert | None, int]:
        """An instant where the rule rests (`judging.Pass.out_of_session`): an alert open
        when the session ended follows the missing-data policy, once after each close
        ("keep" leaves it as it is); return the alert and the next instant to look at."""
        session, timeline = self.session, self.timeline
        assert session is not None
        now = stored.moment(int(self.times[index]))
        if alert is not None and self.rule.missing_data != Rule.MissingData.KEEP:
            closed_at = session.closed_at(index)
            if not session_end_applied(alert.last_seen, closed_at):
                alert = timeline.apply(
                    alert, source_id=self.source_id, labels=self.judge.labels,
                    labels_key=self.judge.labels_key, evaluation=NO_DATA, now=now,
                    inhibited=self._inhibited_at(index),
                )  # fmt: skip
                if alert is not None and not session_end_applied(alert.last_seen, closed_at):
                    timeline.escalate(alert, now)
                    return alert, index + 1  # applied again at the next instant
        resume = int(session.resume[index])
        if alert is None:
            return None, resume
        # Escalation does not wait for the session (`alerts.escalation`, on its own beat).
        timeline.escalate(alert, now)
        due = timeline.escalation_due(alert)
        if due is not None:
            at = int(np.searchsorted(self.times, stored.micros(due), side="left"))
            resume = min(resume, max(at, index + 1))
        return alert, resume

    def _quiet_stretch(self, alert: ReplayedAlert, index: int) -> int:
        """Apply the quiet breaches from `index` on in bulk, as the lifecycle's quiet
        updates would; return the next instant to judge one by one."""
        if (
            alert.condition_cleared_at is not None  # keeping firing: judged one by one
            or not alert.comparison  # opened by missing data: its first breach sets more
            or (
                alert.state == State.FIRING
                and (alert.announced_at is None or alert.last_notified_at is None)
            )
        ):
            return index
        steady = self._steady_ends(alert.severity, alert.inhibited)
        position = int(np.searchsorted(steady, index, side="left"))
        stop = int(steady[position]) if position < len(steady) else len(self.times)
        # ...and before anything time brings: firing after `for`, a repeat, an escalation.
        if alert.state == State.PENDING:
            due = alert.first_seen + self.rule.for_duration
        else:
            assert alert.last_notified_at is not None
            due = alert.last_notified_at + repeat_interval(alert.severity)
            for escalation in self.timeline.routing.escalations:
                if escalation.route.id not in alert.escalated and alert.fired_at is not None:
                    due = min(due, alert.fired_at + escalation.after)
        stop = min(stop, int(np.searchsorted(self.times, stored.micros(due), side="left")))
        if stop <= index:
            return index
        assert self.approx is not None
        values, error = self.approx
        # The peak: the most extreme value of the stretch, exactly (near-ties judged).
        part, slack = values[index:stop], error[index:stop]
        extreme = stretches.more_extreme_of(self.upward, part)
        bound = part[extreme] - slack[extreme] if self.upward else part[extreme] + slack[extreme]
        near = np.flatnonzero(part + slack >= bound if self.upward else part - slack <= bound)
        for k in near[:64] if len(near) <= 64 else [extreme]:
            alert.peak_value = more_extreme(
                alert.comparison, alert.peak_value, self._exact(index + int(k))
            )
        alert.count += stop - index
        alert.last_seen = stored.moment(int(self.times[stop - 1]))
        alert.value = self._exact(stop - 1)
        return stop

    def _steady_ends(self, severity: int, inhibited: bool) -> npt.NDArray[np.int64]:
        """The instants that end a quiet stretch at `severity` (sorted)."""
        key = (severity, inhibited)
        if key not in self._steady:
            assert self.approx is not None
            values, error = self.approx
            quiet = stretches.quiet_band(values, error, self.spec, severity)
            quiet &= self.judge.exists() & self.judge.enough()
            guard = self.guard
            if guard is not None:
                with np.errstate(invalid="ignore"):
                    minimum = self.rule.guard_minimum or 0.0
                    quiet &= guard >= minimum
            if self.inhibited is not None:
                quiet &= self.inhibited == inhibited
            elif inhibited:
                quiet[:] = False
            if self.session is not None:
                quiet &= self.session.open
            self._steady[key] = np.flatnonzero(~quiet)
        return self._steady[key]

    def _exact(self, index: int) -> float | None:
        now = stored.moment(int(self.times[index]))
        return self.judge.subject(index).judge(self.spec, now, None).value


def _value_at(values: stored.Floats | None, index: int) -> float | None:
    if values is None:
        return None
    value = float(values[index])
    return None if value != value else value  # NaN: no value yet
