"""Halting and re-arming: people with their permissions, rules through threshold actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied

from alerts.control import Target, trading_control_by_person
from alerts.models import Alert, AlertTransition, Notification, Rule, Threshold
from metrics.control import ControlRefused, trading_state
from metrics.models import Source, TradingControl
from tests.alerts.conftest import MakeRule, evaluate, later, record
from tests.factories import make_user

pytestmark = pytest.mark.django_db

State = TradingControl.State
Kind = AlertTransition.Kind


def halting_rule(make_rule: MakeRule, *, action: str = "halt", on: bool = True) -> Rule:
    rule = make_rule(
        "drawdown_pct",
        [(30, ">", 10, None), (60, ">", 20, None)],
        name="Drawdown",
        trading_actions=on,
    )
    Threshold.objects.filter(rule=rule, severity=60).update(action=action)
    return rule


def test_an_operator_halts_but_only_an_admin_rearms(source: Source) -> None:
    operator = make_user("olga", groups=["Operator"])
    admin = make_user("adam", groups=["Admin"])
    target = Target.of_source(source)
    trading_control_by_person(
        target=target, state=State.HALTED, by=operator, note="odd fills", via="api"
    )
    assert trading_state(source.pk).state == State.HALTED
    with pytest.raises(PermissionDenied, match=r"metrics\.rearm"):
        trading_control_by_person(
            target=target, state=State.ACTIVE, by=operator, note="looks fine", via="api"
        )
    with pytest.raises(PermissionDenied, match=r"metrics\.rearm"):
        trading_control_by_person(
            target=target, state=State.REDUCE_ONLY, by=operator, note="loosen", via="api"
        )
    trading_control_by_person(
        target=target, state=State.ACTIVE, by=admin, note="checked the fills", via="api"
    )
    state = trading_state(source.pk)
    assert state.state == State.ACTIVE
    assert state.decided_by is not None
    assert state.decided_by.set_by == "adam"


def test_a_viewer_cannot_halt(source: Source) -> None:
    viewer = make_user("vic", groups=["Viewer"])
    with pytest.raises(PermissionDenied, match=r"metrics\.halt"):
        trading_control_by_person(
            target=Target.of_source(source), state=State.HALTED, by=viewer, note="x", via="api"
        )


def test_a_person_must_say_why(source: Source) -> None:
    admin = make_user("adam", groups=["Admin"])
    with pytest.raises(ControlRefused, match="note"):
        trading_control_by_person(
            target=Target.everything(), state=State.HALTED, by=admin, note="", via="admin"
        )


def test_a_firing_threshold_with_halt_halts_and_resolving_never_rearms(
    source: Source, make_rule: MakeRule
) -> None:
    halting_rule(make_rule)
    record(source, "drawdown_pct", 12)
    evaluate(source)
    assert trading_state(source.pk).state == State.ACTIVE  # WARNING has no action
    record(source, "drawdown_pct", 21, ts=later(1))
    evaluate(source, now=later(1))
    state = trading_state(source.pk)
    assert state.state == State.HALTED
    alert = Alert.objects.get(source=source)
    assert state.decided_by is not None
    assert (state.decided_by.alert_id, state.decided_by.set_by_rule) == (alert.pk, "Drawdown")
    entry = alert.timeline.get(kind=Kind.TRADING_STATE)
    assert entry.details["state"] == "halted"
    assert entry.details["previous_state"] == "active"

    record(source, "drawdown_pct", 2, ts=later(2))
    evaluate(source, now=later(2))
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    assert trading_state(source.pk).state == State.HALTED

    admin = make_user("adam", groups=["Admin"])
    trading_control_by_person(
        target=Target.of_source(source), state=State.ACTIVE, by=admin, note="reviewed", via="admin"
    )
    kinds = [t.kind for t in alert.timeline.all()]
    assert kinds.count(Kind.TRADING_STATE) == 2  # the halt and the re-arm
    rearm = alert.timeline.get(kind=Kind.TRADING_STATE, details__state="active")
    assert rearm.actor == admin
    assert rearm.details["note"] == "reviewed"


def test_rule_actions_stay_off_until_switched_on(source: Source, make_rule: MakeRule) -> None:
    halting_rule(make_rule, on=False)
    record(source, "drawdown_pct", 25)
    evaluate(source)
    assert Alert.objects.filter(source=source, state=Alert.State.FIRING).exists()
    assert trading_state(source.pk).state == State.ACTIVE


def test_a_reduce_only_action_never_loosens_a_halt(source: Source, make_rule: MakeRule) -> None:
    halting_rule(make_rule, action="reduce_only")
    admin = make_user("adam", groups=["Admin"])
    trading_control_by_person(
        target=Target.of_source(source), state=State.HALTED, by=admin, note="by hand", via="cli"
    )
    record(source, "drawdown_pct", 25)
    evaluate(source)
    assert trading_state(source.pk).state == State.HALTED
    assert not AlertTransition.objects.filter(kind=Kind.TRADING_STATE).exists()


def test_the_installed_pack_carries_actions_switched_off() -> None:
    drawdown = Rule.objects.get(name="Drawdown")
    daily_loss = Rule.objects.get(name="Daily loss limit")
    assert not drawdown.trading_actions
    assert not daily_loss.trading_actions
    assert drawdown.thresholds.get(severity=60).action == "halt"
    assert daily_loss.thresholds.get(severity=50).action == "reduce_only"


def test_a_change_goes_to_recovery_channels_that_take_trading_states(
    source: Source, django_capture_on_commit_callbacks: object
) -> None:
    from alerts.models import Channel

    def channel(name: str, **config: object) -> Channel:
        url = "https://bot.example.com/hook"
        made = Channel(
            name=name, kind="recovery", config={"url": url, "command": "pause", **config}
        )
        made.secrets = {"signing_secret": "whsec_" + "A" * 32}
        made.save()
        return made

    taking = channel("bot state", trading_state=True)
    channel("other bot", trading_state=True, source="someone-else")
    channel("commands only")
    admin = make_user("adam", groups=["Admin"])
    trading_control_by_person(
        target=Target.of_source(source), state=State.REDUCE_ONLY, by=admin, note="calm down",
        via="admin", expires_at=later(3600) + timedelta(0),
    )  # fmt: skip
    [sent] = Notification.objects.filter(event=Notification.Event.TRADING_STATE)
    assert sent.channel == taking
    assert sent.payload["state"] == "reduce_only"
    assert sent.payload["previous_state"] == "active"
    assert sent.payload["source"] == source.name
