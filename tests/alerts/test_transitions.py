"""What a finding does to an alert, decided from plain values (no database).

The expectations come from README.md, "How an alert moves": the README's drawdown tiers
(WARNING > 10 clearing at 8, EMERGENCY > 20 clearing at 18), `for`, `keep_firing_for`,
what is sent, acknowledgements, silences and inhibition. Any database access here
fails the test (no `django_db` mark): these outcomes are computed, not loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alerts import engine
from alerts.transitions import (
    NOTIFYING,
    Kind,
    Outcome,
    Standing,
    State,
    Step,
    announcement,
    breach_outcome,
    clear_outcome,
)

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
WARNING, EMERGENCY = int(engine.Severity.WARNING), int(engine.Severity.EMERGENCY)
REPEAT = timedelta(minutes=5)
DRAWDOWN = engine.RuleSpec(
    kind=engine.RuleKind.THRESHOLD,
    thresholds=(
        engine.Threshold(engine.Severity.WARNING, engine.Comparison.GT, 10, clear_value=8),
        engine.Threshold(engine.Severity.EMERGENCY, engine.Comparison.GT, 20, clear_value=18),
    ),
)


def never() -> bool:
    return False


def always() -> bool:
    return True


def seconds(n: float) -> datetime:
    return NOW + timedelta(seconds=n)


def firing(**overrides: object) -> Standing:
    """A WARNING alert that fired and was announced a minute ago."""
    values: dict[str, object] = {
        "state": State.FIRING, "severity": WARNING, "first_seen": seconds(-60),
        "announced_at": seconds(-60), "last_notified_at": seconds(-60),
    }  # fmt: skip
    values.update(overrides)
    return Standing(**values)  # type: ignore[arg-type]


def breach(
    standing: Standing | None,
    *,
    severity: int = WARNING,
    now: datetime = NOW,
    inhibited: bool = False,
    for_duration: timedelta = timedelta(0),
    silenced: Callable[[], bool] = never,
) -> Outcome:
    return breach_outcome(
        standing, severity=severity, now=now, inhibited=inhibited, for_duration=for_duration,
        repeat_every=REPEAT, silenced=silenced,
    )  # fmt: skip


def clear(
    standing: Standing,
    *,
    now: datetime = NOW,
    inhibited: bool = False,
    missing: bool = False,
    keep_firing_for: timedelta = timedelta(0),
    silenced: Callable[[], bool] = never,
) -> Outcome:
    return clear_outcome(
        standing, now=now, inhibited=inhibited, missing=missing,
        keep_firing_for=keep_firing_for, repeat_every=REPEAT, silenced=silenced,
    )  # fmt: skip


def moved(
    standing: Standing | None, outcome: Outcome, *, severity: int, now: datetime, breached: bool
) -> Standing | None:
    """The alert after `outcome`, as the lifecycle saves it (None: resolved)."""
    if outcome.state == State.RESOLVED:
        return None
    base = standing or Standing(state=outcome.state, severity=severity, first_seen=now)
    ended = outcome.acknowledgement_ended
    if breached:
        cleared_at = None
    else:
        cleared_at = now if outcome.condition_cleared else base.condition_cleared_at
    return replace(
        base,
        state=outcome.state,
        severity=severity,
        inhibited=outcome.inhibited,
        announced_at=now if outcome.announced else base.announced_at,
        last_notified_at=now if outcome.notified else base.last_notified_at,
        acknowledged=base.acknowledged and not ended,
        acknowledged_until=None if ended else base.acknowledged_until,
        condition_cleared_at=cleared_at,
    )


def drawdown(
    values: list[float], *, every: timedelta = timedelta(seconds=10)
) -> list[tuple[int | None, list[str]]]:
    """Judge each value with the README's drawdown rule, as evaluation does (hysteresis
    from the open alert's threshold), and apply the outcome; per value: the open
    alert's severity after it (None: none open) and what was sent."""
    standing: Standing | None = None
    seen = []
    for index, value in enumerate(values):
        now = NOW + index * every
        holding = None
        if standing is not None and standing.condition_cleared_at is None:
            holding = next(t for t in DRAWDOWN.thresholds if t.severity == standing.severity)
        evaluation = engine.evaluate(DRAWDOWN, [engine.Point(now, value)], now=now, firing=holding)
        if evaluation.status == "breach":
            assert evaluation.severity is not None
            severity = int(evaluation.severity)
            outcome = breach(standing, severity=severity, now=now)
            standing = moved(standing, outcome, severity=severity, now=now, breached=True)
        elif standing is not None:
            outcome = clear(standing, now=now)
            standing = moved(standing, outcome, severity=standing.severity, now=now, breached=False)
        else:
            outcome = Outcome(state=State.RESOLVED, inhibited=False)
        seen.append((None if standing is None else standing.severity, outcome.sent))
    return seen


# --- what reaches people -------------------------------------------------------------------


def test_it_sends_the_changes_the_readme_lists_and_no_others() -> None:
    assert set(NOTIFYING) == {
        Kind.FIRING,
        Kind.SEVERITY_RAISED,
        Kind.REPEAT,
        Kind.RESOLVED,
        Kind.ACKNOWLEDGED,
        Kind.ACKNOWLEDGEMENT_EXPIRED,
    }
    for kind in set(Kind) - NOTIFYING:
        assert announcement(kind, inhibited=False, announced=True, silenced=never) == Step(kind)


def test_it_sends_nothing_but_firing_before_the_firing_went_out() -> None:
    held = announcement(Kind.RESOLVED, inhibited=False, announced=False, silenced=never)
    first = announcement(Kind.FIRING, inhibited=False, announced=False, silenced=never)

    assert held == Step(Kind.RESOLVED)
    assert first == Step(Kind.FIRING, notify=True)


def test_it_counts_a_silenced_change_as_sent_but_holds_it_back() -> None:
    step = announcement(Kind.REPEAT, inhibited=False, announced=True, silenced=always)

    assert step == Step(Kind.REPEAT, notify=True, silenced=True)


def test_it_neither_sends_nor_counts_an_inhibited_change() -> None:
    def asked() -> bool:
        raise AssertionError("an inhibited change needs no silence lookup")

    step = announcement(Kind.RESOLVED, inhibited=True, announced=True, silenced=asked)

    assert step == Step(Kind.RESOLVED)


# --- pending and firing --------------------------------------------------------------------


def test_a_breach_opens_the_alert_firing_and_announces_it() -> None:
    outcome = breach(None)

    assert outcome.state == State.FIRING
    assert outcome.fired
    assert outcome.announced
    assert outcome.notified
    assert outcome.steps == (Step(Kind.FIRING, notify=True),)


def test_with_a_for_duration_a_breach_opens_it_pending_and_tells_no_one() -> None:
    outcome = breach(None, for_duration=timedelta(minutes=2))

    assert outcome.state == State.PENDING
    assert not outcome.fired
    assert not outcome.announced
    assert not outcome.notified
    assert outcome.steps == (Step(Kind.PENDING),)


@pytest.mark.parametrize(("lasted", "fires"), [(119, False), (120, True), (300, True)])
def test_a_pending_alert_fires_once_its_breaches_lasted_for(lasted: int, fires: bool) -> None:
    pending = Standing(state=State.PENDING, severity=WARNING, first_seen=NOW)

    outcome = breach(pending, now=seconds(lasted), for_duration=timedelta(minutes=2))

    assert outcome.state == (State.FIRING if fires else State.PENDING)
    assert outcome.fired is fires
    assert outcome.sent == ([Kind.FIRING] if fires else [])


def test_a_pending_alert_that_changes_severity_fires_once_at_the_new_one() -> None:
    pending = Standing(state=State.PENDING, severity=WARNING, first_seen=NOW)

    for_duration = timedelta(minutes=1)
    still = breach(pending, severity=EMERGENCY, now=seconds(30), for_duration=for_duration)
    fires = breach(pending, severity=EMERGENCY, now=seconds(60), for_duration=for_duration)

    assert still.kinds == []
    assert fires.kinds == [Kind.FIRING]


def test_a_clear_condition_resolves_a_pending_alert_without_telling_anyone() -> None:
    pending = Standing(state=State.PENDING, severity=WARNING, first_seen=NOW)

    outcome = clear(pending, now=seconds(30))

    assert outcome.state == State.RESOLVED
    assert outcome.steps == (Step(Kind.RESOLVED),)


# --- severity, with the README's clear values ----------------------------------------------


def test_severity_follows_the_readme_tiers_and_resolves_at_the_clear_value() -> None:
    assert drawdown([11, 21, 15, 9, 8]) == [
        (WARNING, [Kind.FIRING]),
        (EMERGENCY, [Kind.SEVERITY_RAISED]),
        (WARNING, []),  # lowered: recorded, not sent
        (WARNING, []),  # 9 is above WARNING's clear value 8: still on
        (None, [Kind.RESOLVED]),
    ]


def test_a_value_falling_straight_from_emergency_past_warning_ends_at_warning() -> None:
    # 21 passed 10 on its way up: WARNING's switch is on until 8.
    assert [severity for severity, _ in drawdown([11, 21, 9])] == [WARNING, EMERGENCY, WARNING]
    assert [severity for severity, _ in drawdown([21, 9, 8])] == [EMERGENCY, WARNING, None]


def test_it_records_a_lowered_severity_without_sending_it() -> None:
    outcome = breach(firing(severity=EMERGENCY), severity=WARNING)

    assert outcome.steps == (Step(Kind.SEVERITY_LOWERED),)


# --- repeats -------------------------------------------------------------------------------


def test_a_firing_alert_repeats_each_interval_from_the_last_notification() -> None:
    standing = firing(last_notified_at=NOW)

    assert breach(standing, now=NOW + REPEAT - timedelta(seconds=1)).kinds == []
    assert breach(standing, now=NOW + REPEAT).steps == (Step(Kind.REPEAT, notify=True),)


def test_a_change_sent_now_is_news_enough_but_a_lowered_severity_does_not_delay_a_repeat() -> None:
    standing = firing(severity=WARNING, last_notified_at=NOW)
    later = NOW + REPEAT

    raised = breach(standing, severity=EMERGENCY, now=later)
    lowered = breach(replace(standing, severity=EMERGENCY), severity=WARNING, now=later)

    assert raised.sent == [Kind.SEVERITY_RAISED]
    assert lowered.kinds == [Kind.SEVERITY_LOWERED, Kind.REPEAT]
    assert lowered.sent == [Kind.REPEAT]


def test_keep_firing_for_keeps_it_firing_with_repeats_then_resolves() -> None:
    keep = timedelta(minutes=10)
    standing = firing(last_notified_at=NOW)

    cleared = clear(standing, now=seconds(10), keep_firing_for=keep)
    meanwhile = clear(
        replace(standing, condition_cleared_at=seconds(10)), now=NOW + REPEAT,
        keep_firing_for=keep,
    )  # fmt: skip
    done = clear(
        replace(standing, condition_cleared_at=seconds(10)), now=seconds(10) + keep,
        keep_firing_for=keep,
    )  # fmt: skip

    assert cleared.state == State.FIRING
    assert cleared.condition_cleared
    assert cleared.kinds == [Kind.CONDITION_CLEARED]
    assert meanwhile.state == State.FIRING
    assert meanwhile.sent == [Kind.REPEAT]
    assert done.state == State.RESOLVED
    assert done.sent == [Kind.RESOLVED]


def test_a_breach_in_keep_firing_for_carries_on_the_same_alert() -> None:
    standing = firing(condition_cleared_at=seconds(-10), last_notified_at=NOW)

    same = breach(standing, now=seconds(10))
    worse = breach(standing, severity=EMERGENCY, now=seconds(10))

    assert same.state == State.FIRING
    assert same.kinds == []
    assert worse.kinds == [Kind.SEVERITY_RAISED]


def test_missing_data_resolves_at_once_whatever_keep_firing_for_says() -> None:
    outcome = clear(firing(), missing=True, keep_firing_for=timedelta(hours=1))

    assert outcome.state == State.RESOLVED
    assert outcome.sent == [Kind.RESOLVED]


def test_a_resolved_alert_leaves_the_next_breach_a_new_alert() -> None:
    resolved = clear(firing())
    again = breach(None, now=seconds(30))

    assert resolved.state == State.RESOLVED
    assert resolved.sent == [Kind.RESOLVED]
    assert again.state == State.FIRING
    assert again.sent == [Kind.FIRING]


# --- acknowledged --------------------------------------------------------------------------


def test_an_acknowledged_alert_does_not_repeat() -> None:
    forever = firing(acknowledged=True, last_notified_at=NOW)
    until_later = firing(acknowledged=True, acknowledged_until=NOW + 3 * REPEAT)

    assert breach(forever, now=NOW + 10 * REPEAT).kinds == []
    assert breach(until_later, now=NOW + 2 * REPEAT).kinds == []


def test_an_acknowledgement_lapses_at_its_end_and_repeats_resume() -> None:
    standing = firing(acknowledged=True, acknowledged_until=NOW, last_notified_at=NOW - 2 * REPEAT)

    outcome = breach(standing, now=NOW)

    assert outcome.acknowledgement_ended
    # The lapse itself is news: no repeat on top of it.
    assert outcome.steps == (Step(Kind.ACKNOWLEDGEMENT_EXPIRED, notify=True),)
    after = moved(standing, outcome, severity=WARNING, now=NOW, breached=True)
    assert after is not None
    assert not after.acknowledged
    assert breach(after, now=NOW + REPEAT).sent == [Kind.REPEAT]


def test_a_pending_alerts_acknowledgement_lapses_on_the_timeline_only() -> None:
    pending = Standing(
        state=State.PENDING, severity=WARNING, first_seen=NOW, acknowledged=True,
        acknowledged_until=seconds(5),
    )  # fmt: skip

    outcome = breach(pending, now=seconds(10), for_duration=timedelta(minutes=5))

    assert outcome.acknowledgement_ended
    assert outcome.steps == (Step(Kind.ACKNOWLEDGEMENT_EXPIRED),)


# --- silenced and inhibited ----------------------------------------------------------------


def test_a_silenced_alert_records_its_firing_and_holds_it_back() -> None:
    outcome = breach(None, silenced=always)

    assert outcome.steps == (Step(Kind.FIRING, notify=True, silenced=True),)
    assert outcome.notified  # the repeat clock runs on
    assert not outcome.announced


def test_after_a_silence_ends_the_held_back_firing_goes_out_as_firing() -> None:
    held = firing(announced_at=None, last_notified_at=NOW)

    still_silenced = breach(held, now=seconds(30), silenced=always)
    ended = breach(held, severity=EMERGENCY, now=seconds(30))

    assert still_silenced.sent == []
    # Announced with the severity it has now, as `firing`, not as a change or a repeat.
    assert ended.steps == (Step(Kind.FIRING, notify=True),)
    assert ended.announced


def test_nothing_about_an_unannounced_alert_is_sent_before_its_firing() -> None:
    # Its firing was held back by a silence that has just ended; it clears at once.
    held = firing(announced_at=None, last_notified_at=NOW)

    outcome = clear(held, now=seconds(30))

    assert outcome.state == State.RESOLVED
    assert outcome.steps == (Step(Kind.RESOLVED),)


def test_an_inhibited_alert_is_recorded_but_sends_nothing_and_never_repeats() -> None:
    opened = breach(None, inhibited=True)
    standing = firing(announced_at=None, last_notified_at=None, inhibited=True)

    assert opened.steps == (Step(Kind.FIRING),)
    assert not opened.notified
    assert not opened.announced
    assert breach(standing, inhibited=True, now=NOW + 10 * REPEAT).kinds == []


def test_when_inhibition_ends_the_held_back_firing_goes_out() -> None:
    standing = firing(announced_at=None, last_notified_at=None, inhibited=True)

    outcome = breach(standing, inhibited=False)

    assert outcome.kinds == [Kind.UNINHIBITED, Kind.FIRING]
    assert outcome.sent == [Kind.FIRING]
    assert not outcome.inhibited
    assert outcome.announced


def test_a_kill_switch_turning_on_mutes_a_firing_alert_and_its_resolve() -> None:
    muted = breach(firing(), inhibited=True, now=NOW + 10 * REPEAT)
    resolved = clear(firing(inhibited=True), inhibited=True)

    assert muted.kinds == [Kind.INHIBITED]
    assert muted.sent == []
    assert resolved.steps == (Step(Kind.RESOLVED),)


def test_a_resolve_after_the_kill_switch_was_released_is_sent() -> None:
    outcome = clear(firing(inhibited=True), inhibited=False)

    assert outcome.kinds == [Kind.UNINHIBITED, Kind.RESOLVED]
    assert outcome.sent == [Kind.RESOLVED]
