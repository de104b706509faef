"""The alert lifecycle against a reference model written from the README alone.

`LifecycleModel` below is a small re-statement of README.md, "Rules and alerts" and
"How an alert moves" (and the `TRADEWATCH_REPEAT_<SEVERITY>_SECONDS` line of the
environment variables): threshold switches with clear values, `for`,
`keep_firing_for`, M of N, what is sent and when, acknowledgements, silences, kill-switch
inhibition and resolves by hand. It was written without reading the lifecycle or the
engine, so where it and the code disagree one of them is wrong, and the model is not
bent to fit.

A hypothesis state machine drives the real system (samples stored as ingestion stores
them, `source_evaluate` at explicit instants of a simulated clock, the lifecycle's
acknowledge and resolve, silences, kill-switch events, threshold edits) on one source
and one two-tier drawdown rule drawn per example, and after every step compares the open
alert (none, pending or firing; its severity), how a closed one was resolved, and the
notifications sent during the step with the model's.

"Sent" is a transition marked `notify` and not `silenced`. Choices made where the README
leaves room are marked "Choice:" below.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from alerts.alert_actions import alert_acknowledge, alert_resolve
from alerts.evaluation import forget_rules_cache, rules_changed
from alerts.models import Alert, AlertTransition, Rule, Severity, Threshold
from alerts.routing import forget_routing_cache
from alerts.silences import silence_create, silence_expire
from metrics.ingest import forget_series_cache
from metrics.models import Source
from tests.alerts.conftest import evaluate, record, send_event
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db

WARNING, EMERGENCY = int(Severity.WARNING), int(Severity.EMERGENCY)
METRIC = "drawdown_pct"

# (WARNING value, its clear value, EMERGENCY value, its clear value), all `>`: the
# README's example, no hysteresis, hysteresis on one tier only, clear = value, and an
# EMERGENCY clear value below WARNING's value. Every one passes the admin's check
# (`engine.check_monotonic`); edits pick among them too.
TIERS: list[tuple[float, float | None, float, float | None]] = [
    (10, 8, 20, 18),
    (10, None, 20, None),
    (10, 8, 20, None),
    (10, None, 20, 18),
    (10, 5, 15, 12),
    (10, 10, 20, 20),
    (10, 8, 20, 9),
    (12, 8, 22, 18),
]
# Values on, between and around every threshold and clear value above (equality included:
# "fire above 10, clear at 8 or below"), those in a hysteresis band of TIERS more often.
VALUES = st.one_of(
    st.sampled_from([x / 2 for x in range(0, 61)]),
    st.sampled_from([8.5, 9.0, 9.5, 10.0, 12.5, 15.0, 18.5, 19.0, 19.5, 20.0]),
)
DEFAULT_REPEATS = {
    "EMERGENCY": 10, "CRITICAL": 60, "ERROR": 120, "WARNING": 300, "INFO": 600, "DEBUG": 600,
}  # fmt: skip
SHORT_REPEATS = {
    "EMERGENCY": 30, "CRITICAL": 60, "ERROR": 60, "WARNING": 90, "INFO": 600, "DEBUG": 600,
}  # fmt: skip
# Whole seconds between steps: a second to 20 minutes, around the intervals above often.
STEPS = st.one_of(
    st.sampled_from([1, 2, 9, 11, 29, 30, 31, 59, 60, 61, 89, 90, 91, 299, 300, 301, 600, 1200]),
    st.integers(min_value=1, max_value=1200),
)
MAX_STEPS = 30
_names = itertools.count()

# --- the model ----------------------------------------------------------------------------


@dataclass
class Tier:
    severity: int
    value: float
    clear: float | None


@dataclass
class ModelAlert:
    state: str  # "pending" or "firing"
    severity: int
    opened_at: datetime
    announced: bool = False  # its `firing` was sent (not held back)
    last_notified: datetime | None = None  # the repeat clock
    acknowledged: bool = False
    acknowledged_until: datetime | None = None
    cleared_at: datetime | None = None  # keep_firing_for: when the condition cleared


@dataclass
class ModelSilence:
    pk: int
    ends_at: datetime
    expired_at: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        # Created at the instant of its step, so it has started by any later instant.
        end = self.ends_at if self.expired_at is None else min(self.ends_at, self.expired_at)
        return now < end


@dataclass
class LifecycleModel:
    """The README's alert lifecycle for one rule on one series."""

    tiers: list[Tier]
    for_duration: timedelta
    keep_firing_for: timedelta
    m_of_n: tuple[int, int] | None
    inhibitable: bool
    repeats: dict[str, int]

    switches: dict[int, bool] = field(default_factory=dict)
    history: list[bool] = field(default_factory=list)  # M of N: newest last
    verdict: int | None = None  # the last evaluation's breach severity (None: no breach)
    alert: ModelAlert | None = None
    held: int | None = None  # resolved by a person at this severity: the resolve holds
    kill_switch: bool = False
    silences: list[ModelSilence] = field(default_factory=list)
    sent: list[tuple[str, int]] = field(default_factory=list)  # during the current step
    alert_inhibited: bool = False  # the last evaluation found the open alert inhibited
    resolved: list[str] = field(default_factory=list)  # resolutions during the current step

    def repeat_interval(self, severity: int) -> timedelta:
        return timedelta(seconds=self.repeats[Severity(severity).name])

    def silenced(self, now: datetime) -> bool:
        return any(s.in_force(now) for s in self.silences)

    def inhibited(self) -> bool:
        return self.inhibitable and self.kill_switch

    def notify(self, kind: str, now: datetime) -> None:
        """A change that should reach people ("What is sent"), on the open alert.

        Inhibited: recorded, nothing sent, and it does not count. Otherwise it counts as
        sent (Choice: every such change restarts the repeat clock, silenced or not:
        "counted as sent (the repeat clock runs on)"), and is sent unless a silence holds
        it back or, for anything but `firing`, the alert's firing was never sent.
        """
        alert = self.alert
        assert alert is not None
        if self.inhibited():
            return
        alert.last_notified = now
        if self.silenced(now) or (kind != "firing" and not alert.announced):
            return
        if kind == "firing":
            alert.announced = True
        self.sent.append((kind, alert.severity))

    def judge(self, value: float) -> tuple[int | None, int | None]:
        """This evaluation's breach, and the breach that counts (M of N)."""
        # Each threshold is a switch; the breach is the most severe switch that is on.
        for tier in self.tiers:
            was_on = self.switches.get(tier.severity, False)
            self.switches[tier.severity] = value > tier.value or (
                was_on and tier.clear is not None and value > tier.clear
            )
        on = [tier.severity for tier in self.tiers if self.switches[tier.severity]]
        raw = max(on) if on else None
        if self.m_of_n is None:
            return raw, raw
        # Choice: "A breach counts only when M of the rule's last N evaluations
        # breached", read literally: this evaluation must breach, and M of the last N
        # (this one included; fewer than N if there were fewer) did.
        m, n = self.m_of_n
        self.history = [*self.history, raw is not None][-n:]
        return raw, raw if raw is not None and sum(self.history) >= m else None

    def resolve(self, resolution: str, now: datetime) -> None:
        assert self.alert is not None
        self.alert_inhibited = False
        if self.alert.state == "firing":
            self.notify("resolved", now)
        # A pending alert "is resolved without telling anyone".
        self.alert = None
        self.resolved.append(resolution)

    def evaluate(self, value: float, now: datetime) -> None:
        """One evaluation at `now` of the newest value (a sample may or may not have
        arrived for it: the model's answer is the same)."""
        self.alert_inhibited = self.inhibited()
        _, verdict = self.judge(value)
        self.verdict = verdict
        if self.held is not None:
            # "no new alert opens for it until its condition clears (judged with the clear
            # value, as if it still fired), it gets worse (a more severe threshold
            # triggers) ... After that, a breach is a new alert." Choice: "worse" is more
            # severe than the alert was when the person resolved it.
            if verdict is None or verdict > self.held:
                self.held = None
            else:
                return
        self.move(verdict, now)
        alert = self.alert
        if alert is None:
            return
        held_back = alert.state == "firing" and not alert.announced
        if held_back and not self.silenced(now) and not self.inhibited():
            # "an alert first held back, by a silence or by inhibition, is announced as
            # `firing` at the first evaluation after that ends". Choice: at its current
            # severity; a raise in the same evaluation is not sent apart from it.
            self.notify("firing", now)
        if alert.acknowledged_until is not None and now >= alert.acknowledged_until:
            # Choice: the acknowledgement's end is noticed by the first evaluation at or
            # after it, after what that evaluation found (so at the severity it found,
            # and after a firing it sends).
            alert.acknowledged = False
            alert.acknowledged_until = None
            self.notify("ack_expired", now)
        if alert.state != "firing" or alert.acknowledged or self.inhibited():
            return
        # Choice: "again each repeat interval" after the last change counted as sent;
        # due once the interval has passed (at or after it).
        assert alert.last_notified is not None or not alert.announced
        if alert.last_notified and now - alert.last_notified >= self.repeat_interval(
            alert.severity
        ):
            self.notify("repeat", now)

    def move(self, verdict: int | None, now: datetime) -> None:
        """Open, fire, raise, lower, keep firing or resolve the alert on the breach found."""
        alert = self.alert
        if verdict is None:
            if alert is None:
                return
            if alert.state == "pending" or not self.keep_firing_for:
                self.resolve("cleared", now)
                return
            if alert.cleared_at is None:
                alert.cleared_at = now
            # Choice: it keeps firing for `keep_firing_for` and resolves at the first
            # evaluation at least that long after the condition cleared.
            if now - alert.cleared_at >= self.keep_firing_for:
                self.resolve("cleared", now)
        elif alert is None:
            alert = self.alert = ModelAlert(state="pending", severity=verdict, opened_at=now)
            if not self.for_duration:
                alert.state = "firing"
                self.notify("firing", now)
        else:
            alert.cleared_at = None  # "a breach meanwhile carries on the same alert"
            raised = verdict > alert.severity
            alert.severity = verdict
            if raised and alert.state == "firing":
                self.notify("severity_raised", now)
            # A lowered severity stays on the timeline.
            # Choice: "fires once breaches have lasted `for`": at the first evaluation at
            # least `for` after the breach that opened it.
            if alert.state == "pending" and now - alert.opened_at >= self.for_duration:
                alert.state = "firing"
                self.notify("firing", now)

    def acknowledge(self, until: datetime | None, now: datetime) -> None:
        assert self.alert is not None
        self.alert.acknowledged = True
        self.alert.acknowledged_until = until
        self.notify("acknowledged", now)

    def resolve_by_hand(self, now: datetime) -> None:
        assert self.alert is not None
        severity = self.alert.severity
        self.resolve("manual", now)
        # Choice: "The resolve holds while the same problem goes on": only if the last
        # evaluation found the breach still there (not in keep_firing_for's tail).
        self.held = severity if self.verdict is not None else None


# --- the machine --------------------------------------------------------------------------


class AlertLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example in a savepoint of the test's transaction, rolled back at its end:
        # no rule, alert or silence of one example is seen by the next.
        self.savepoint = transaction.savepoint()
        self.overridden: override_settings | None = None
        self.model: LifecycleModel
        self.source: Source
        self.rule: Rule
        self.user: User
        self.now: datetime
        self.last_value: float | None = None
        self.seen_transition = 0
        self.open_before: int | None = None

    @initialize(
        tiers=st.sampled_from(TIERS),
        for_seconds=st.sampled_from([0, 0, 60, 300]),
        keep_seconds=st.sampled_from([0, 0, 60, 600]),
        m_of_n=st.sampled_from([None, None, (2, 3), (1, 2), (3, 3)]),
        inhibitable=st.booleans(),
        repeats=st.sampled_from([DEFAULT_REPEATS, SHORT_REPEATS]),
    )
    def start(
        self,
        tiers: tuple[float, float | None, float, float | None],
        for_seconds: int,
        keep_seconds: int,
        m_of_n: tuple[int, int] | None,
        inhibitable: bool,
        repeats: dict[str, int],
    ) -> None:
        forget_rules_cache()
        forget_series_cache()
        forget_routing_cache()
        cache.clear()
        self.overridden = override_settings(TRADEWATCH_REPEAT_SECONDS=repeats)
        self.overridden.enable()
        n = next(_names)
        self.user = User.objects.create_user(username=f"model-operator-{n}")
        self.source = SourceFactory.create(name=f"model-bot-{n}")
        self.rule = Rule.objects.create(
            name=f"model drawdown {n}",
            metric=METRIC,
            aggregation=Rule.Aggregation.LAST,
            # Far longer than any example: the newest sample is always in the window, so
            # the missing-data policy never comes into play.
            window=timedelta(days=2),
            scope=Rule.Scope.SOURCE,
            source=self.source,
            for_duration=timedelta(seconds=for_seconds),
            keep_firing_for=timedelta(seconds=keep_seconds),
            m_of_n_m=m_of_n[0] if m_of_n else None,
            m_of_n_n=m_of_n[1] if m_of_n else None,
            inhibited_by=Rule.InhibitedBy.KILL_SWITCH if inhibitable else "",
        )
        for tier in self.tiers_of(tiers):
            Threshold.objects.create(
                rule=self.rule, severity=tier.severity, comparison=">", value=tier.value,
                clear_value=tier.clear,
            )  # fmt: skip
        forget_rules_cache()
        self.model = LifecycleModel(
            tiers=self.tiers_of(tiers),
            for_duration=timedelta(seconds=for_seconds),
            keep_firing_for=timedelta(seconds=keep_seconds),
            m_of_n=m_of_n,
            inhibitable=inhibitable,
            repeats=repeats,
        )
        # The clock starts far enough back that no step takes it past the real time.
        self.now = timezone.now().replace(microsecond=0) - timedelta(
            seconds=1200 * (2 * MAX_STEPS + 2)
        )

    def teardown(self) -> None:
        if self.overridden is not None:
            self.overridden.disable()
        transaction.savepoint_rollback(self.savepoint)
        forget_rules_cache()
        forget_series_cache()
        forget_routing_cache()

    @staticmethod
    def tiers_of(tiers: tuple[float, float | None, float, float | None]) -> list[Tier]:
        warning, warning_clear, emergency, emergency_clear = tiers
        return [Tier(WARNING, warning, warning_clear), Tier(EMERGENCY, emergency, emergency_clear)]

    # --- steps ---------------------------------------------------------------------------

    def tick(self, seconds: int) -> None:
        self.model.sent = []
        self.model.resolved = []
        alert = self.open_alert()
        self.open_before = alert.pk if alert is not None else None
        self.now += timedelta(seconds=seconds)

    def evaluate_now(self, *, fresh: bool = False) -> None:
        """Evaluate at `now`; `fresh`: the last value is sent again at this instant first."""
        assert self.last_value is not None
        if fresh:
            record(self.source, METRIC, self.last_value, ts=self.now)
        evaluate(self.source, now=self.now)
        self.model.evaluate(self.last_value, self.now)

    @rule(seconds=STEPS, value=VALUES)
    def a_value_arrives(self, seconds: int, value: float) -> None:
        self.tick(seconds)
        self.last_value = value
        self.evaluate_now(fresh=True)

    @rule(seconds=STEPS, value=VALUES)
    def another_value_arrives(self, seconds: int, value: float) -> None:
        # Values arrive more often than anything else happens.
        self.a_value_arrives(seconds, value)

    @precondition(lambda self: self.last_value is not None)
    @rule(seconds=STEPS)
    def time_passes(self, seconds: int) -> None:
        self.tick(seconds)
        self.evaluate_now()

    @precondition(lambda self: self.model.alert is not None and not self.model.alert.acknowledged)
    @rule(seconds=STEPS, until=st.one_of(st.none(), st.sampled_from([30, 89, 300, 900])))
    def someone_acknowledges(self, seconds: int, until: int | None) -> None:
        self.tick(seconds)
        # Half a second past a whole second: never at the instant of an evaluation.
        end = None if until is None else self.now + timedelta(seconds=until + 0.5)
        alert = self.open_alert()
        assert alert is not None
        alert_acknowledge(alert_id=alert.pk, by=self.user, note="on it", until=end, now=self.now)
        self.model.acknowledge(end, self.now)

    @precondition(lambda self: self.model.alert is not None)
    @rule(seconds=STEPS)
    def someone_resolves(self, seconds: int) -> None:
        self.tick(seconds)
        alert = self.open_alert()
        assert alert is not None
        alert_resolve(alert_id=alert.pk, by=self.user, note="handled", now=self.now)
        self.model.resolve_by_hand(self.now)

    @rule(seconds=STEPS, length=st.sampled_from([30, 120, 600, 3600]))
    def someone_silences_everything(self, seconds: int, length: int) -> None:
        self.tick(seconds)
        ends_at = self.now + timedelta(seconds=length + 0.5)
        silence = silence_create(
            reason="maintenance", created_by=self.user, starts_at=self.now, ends_at=ends_at,
            now=self.now,
        )  # fmt: skip
        self.model.silences.append(ModelSilence(silence.pk, ends_at))

    @precondition(lambda self: bool(self.model.silences))
    @rule(seconds=STEPS)
    def someone_ends_a_silence(self, seconds: int) -> None:
        self.tick(seconds)
        for silence in self.model.silences:
            if silence.in_force(self.now):
                silence_expire(silence_id=silence.pk, by=self.user, now=self.now)
                silence.expired_at = self.now
                return

    @precondition(lambda self: self.last_value is not None and not self.model.kill_switch)
    @rule(seconds=STEPS, value=st.none() | VALUES)
    def kill_switch_activated(self, seconds: int, value: float | None) -> None:
        self.kill_switch("kill_switch_activated", seconds, value, active=True)

    @precondition(lambda self: self.model.kill_switch)
    @rule(seconds=STEPS, value=st.none() | VALUES)
    def kill_switch_released(self, seconds: int, value: float | None) -> None:
        self.kill_switch("kill_switch_released", seconds, value, active=False)

    def kill_switch(self, event: str, seconds: int, value: float | None, *, active: bool) -> None:
        # The event, then an evaluation a second later, with a new value or without: an
        # alert's inhibition only changes at an evaluation, so a person's action in
        # between is not a question.
        self.tick(seconds)
        send_event(self.source, event, ts=self.now)
        self.model.kill_switch = active
        self.now += timedelta(seconds=1)
        if value is not None:
            self.last_value = value
        self.evaluate_now(fresh=value is not None)

    @rule(tiers=st.sampled_from(TIERS))
    def someone_edits_the_thresholds(
        self, tiers: tuple[float, float | None, float, float | None]
    ) -> None:
        self.tick(1)
        for tier in self.tiers_of(tiers):
            Threshold.objects.filter(rule=self.rule, severity=tier.severity).update(
                value=tier.value, clear_value=tier.clear
            )
        rules_changed()
        forget_rules_cache()
        # Choice: the switches keep their state: an edit changes what the next value is
        # compared with, not what earlier values were.
        self.model.tiers = self.tiers_of(tiers)

    # --- what is compared ----------------------------------------------------------------

    def open_alert(self) -> Alert | None:
        alerts = list(Alert.objects.filter(source=self.source).exclude(state="resolved"))
        assert len(alerts) <= 1, alerts
        return alerts[0] if alerts else None

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        # The README's rules, checked on the code alone, whatever the model says: "The
        # first notification of an alert is always `firing`", and "a lowered severity
        # ... stay[s] on the timeline".
        sent_by_alert = AlertTransition.objects.filter(
            alert__source=self.source, notify=True, silenced=False
        ).order_by("alert_id", "at", "pk")
        for alert_id, rows in itertools.groupby(
            sent_by_alert.values_list("alert_id", "kind"), key=lambda row: row[0]
        ):
            kinds = [kind for _, kind in rows]
            assert kinds[0] == "firing", f"alert {alert_id} first sent {kinds}"
            assert "severity_lowered" not in kinds, f"alert {alert_id} sent {kinds}"

        # The model's open alert: none, pending or firing, and its severity.
        alert = self.open_alert()
        expected = self.model.alert
        # (One assertion per way to differ: hypothesis reports each apart.)
        if expected is None:
            assert alert is None, "an alert is open where the model has none"
        else:
            assert alert is not None, "no alert is open where the model has one"
            assert alert.state == expected.state, "the open alert's state"
            assert Severity(alert.severity).name == Severity(expected.severity).name, (
                "the open alert's severity"
            )
        if self.open_before is not None and (alert is None or alert.pk != self.open_before):
            before = Alert.objects.get(pk=self.open_before)
            assert [before.resolution] == self.model.resolved, "how it was resolved"
            self.open_before = None

        # What the step sent.
        transitions = list(
            AlertTransition.objects.filter(alert__source=self.source, pk__gt=self.seen_transition)
            .order_by("pk")
            .values_list("pk", "kind", "severity", "notify", "silenced")
        )
        if transitions:
            self.seen_transition = transitions[-1][0]
        sent = Counter(
            (kind, Severity(severity).name)
            for _, kind, severity, notify, silenced in transitions
            if notify and not silenced
        )
        expected_sent = Counter(
            (kind, Severity(severity).name) for kind, severity in self.model.sent
        )
        # Choice: the order of what one step sends is not compared, only what it is.
        assert sent == expected_sent, "what was sent during the step"


def test_the_alert_lifecycle_follows_the_readme(no_pack: None) -> None:
    run_state_machine_as_test(
        AlertLifecycle,
        settings=settings(
            max_examples=int(os.environ.get("TRADEWATCH_MODEL_EXAMPLES", "60")),
            stateful_step_count=MAX_STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


@pytest.mark.parametrize("values", [[11, 21, 15, 9, 8], [11, 21, 9, 8]])
def test_the_readme_example_steps_down_to_warning(no_pack: None, values: list[float]) -> None:
    """The README's own example, through the same machine: "both 11 -> 21 -> 15 -> 9 and
    11 -> 21 -> 9 end at WARNING, and the alert resolves at 8 or below"."""
    machine = AlertLifecycle()
    try:
        machine.start(
            tiers=TIERS[0], for_seconds=0, keep_seconds=0, m_of_n=None, inhibitable=False,
            repeats=DEFAULT_REPEATS,
        )  # fmt: skip
        for value in values:
            machine.a_value_arrives(seconds=1, value=value)
            machine.matches_the_model()
        assert [a.severity for a in Alert.objects.filter(source=machine.source)] == [WARNING]
    finally:
        machine.teardown()


def test_a_switch_m_of_n_did_not_count_yet_still_holds_by_its_clear_value(no_pack: None) -> None:
    """WARNING > 10 (clear 8), EMERGENCY > 20 (clear 18), 3 of 3, kept firing 600 s: the
    WARNING alert clears at 5 and is kept; 22 turns EMERGENCY's switch on though 3 of 3
    does not hold yet; at 19 it is still on (above 18), and the third breach in a row
    raises the alert to EMERGENCY, not WARNING."""
    machine = AlertLifecycle()
    try:
        machine.start(
            tiers=TIERS[0], for_seconds=0, keep_seconds=600, m_of_n=(3, 3), inhibitable=False,
            repeats=DEFAULT_REPEATS,
        )  # fmt: skip
        for value in [15, 15, 15, 5, 22, 22, 19]:
            machine.a_value_arrives(seconds=10, value=value)
            machine.matches_the_model()
        [alert] = Alert.objects.filter(source=machine.source)
        assert (alert.state, alert.severity) == ("firing", EMERGENCY)
    finally:
        machine.teardown()
