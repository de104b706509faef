"""Trading state: resolution of the controls covering a source, the kept copy, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from audit.models import TradingControlEvent
from metrics.control import (
    Control,
    ControlRefused,
    Controls,
    control_set,
    controls_in_force,
    effective_state,
    trading_state,
)
from metrics.models import Source, TradingControl
from tests.factories import SourceFactory, TagFactory

State = TradingControl.State
Scope = TradingControl.Scope
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def control(
    scope: str, state: str, *, pk: int = 1, expires_at: datetime | None = None, **target: int
) -> Control:
    return Control(
        id=pk, scope=scope, source_id=target.get("source_id"), tag_id=target.get("tag_id"),
        tag=None, state=state, reason="why", set_by="ann", set_by_rule="", set_via="admin",
        alert_id=None, set_at=NOW, expires_at=expires_at,
    )  # fmt: skip


def test_it_takes_the_strictest_state_so_a_global_halt_wins_over_a_sources_active() -> None:
    own = control(Scope.SOURCE, State.ACTIVE, pk=1, source_id=7)
    everything = control(Scope.ALL, State.HALTED, pk=2)
    decided = effective_state([own, everything], NOW)
    assert decided.state == State.HALTED
    assert decided.decided_by == everything
    assert not decided.may_open_positions


def test_it_reports_the_widest_of_equally_strict_controls() -> None:
    own = control(Scope.SOURCE, State.REDUCE_ONLY, pk=1, source_id=7)
    tagged = control(Scope.TAG, State.REDUCE_ONLY, pk=2, tag_id=3)
    assert effective_state([own, tagged], NOW).decided_by == tagged
    halted = control(Scope.SOURCE, State.HALTED, pk=3, source_id=7)
    assert effective_state([halted, tagged], NOW).state == State.HALTED


def test_it_counts_a_reduce_only_past_its_expiry_as_active() -> None:
    expiring = control(
        Scope.SOURCE, State.REDUCE_ONLY, source_id=7, expires_at=NOW + timedelta(minutes=5)
    )
    assert effective_state([expiring], NOW).state == State.REDUCE_ONLY
    assert effective_state([expiring], NOW + timedelta(minutes=5)).state == State.ACTIVE


def test_it_answers_active_without_any_control() -> None:
    decided = Controls().state_of(7, NOW)
    assert decided.state == State.ACTIVE
    assert decided.may_open_positions
    assert decided.as_dict()["reason"] == ""


def test_the_etag_changes_with_what_the_bot_is_told() -> None:
    first = effective_state([control(Scope.SOURCE, State.HALTED, source_id=7)], NOW)
    again = effective_state([control(Scope.SOURCE, State.HALTED, source_id=7)], NOW)
    other = effective_state([control(Scope.SOURCE, State.REDUCE_ONLY, source_id=7)], NOW)
    assert first.etag == again.etag != other.etag


@pytest.mark.django_db
def test_it_covers_the_sources_of_a_tag_and_every_source_globally() -> None:
    live = TagFactory.create(name="live")
    tagged, other = SourceFactory.create(name="tagged"), SourceFactory.create(name="other")
    tagged.tags.add(live)
    change = control_set(scope=Scope.TAG, tag=live, state=State.REDUCE_ONLY, reason="risk off")
    assert change is not None
    assert [c.source_name for c in change.changed_sources] == ["tagged"]
    assert trading_state(tagged.pk).state == State.REDUCE_ONLY
    assert trading_state(other.pk).state == State.ACTIVE
    control_set(scope=Scope.ALL, state=State.HALTED, reason="exchange down")
    assert trading_state(other.pk).state == State.HALTED
    assert trading_state(tagged.pk).decided_by.scope == Scope.ALL  # type: ignore[union-attr]
    assert [c.scope for c in controls_in_force()] == [Scope.ALL, Scope.TAG]


@pytest.mark.django_db
def test_it_reads_the_state_without_a_query_until_a_control_changes(
    source: Source, django_assert_num_queries: object
) -> None:
    trading_state(source.pk)
    with django_assert_num_queries(0):  # type: ignore[operator]
        assert trading_state(source.pk).state == State.ACTIVE
    control_set(scope=Scope.SOURCE, source=source, state=State.HALTED, reason="drawdown")
    assert trading_state(source.pk).state == State.HALTED


@pytest.mark.django_db
def test_a_rule_only_tightens(source: Source) -> None:
    control_set(scope=Scope.SOURCE, source=source, state=State.HALTED, reason="by hand")
    assert (
        control_set(
            scope=Scope.SOURCE,
            source=source,
            state=State.REDUCE_ONLY,
            reason="loss",
            rule="Daily loss limit",
            tighten_only=True,
        )
        is None
    )
    assert trading_state(source.pk).state == State.HALTED


@pytest.mark.django_db
def test_it_refuses_a_change_without_a_note_or_with_an_expiring_halt(source: Source) -> None:
    with pytest.raises(ControlRefused, match="note"):
        control_set(scope=Scope.SOURCE, source=source, state=State.HALTED, reason="  ")
    with pytest.raises(ControlRefused, match="reduce only can expire"):
        control_set(
            scope=Scope.SOURCE, source=source, state=State.HALTED, reason="x",
            expires_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip


@pytest.mark.django_db
def test_it_records_every_change_in_history(source: Source) -> None:
    control_set(scope=Scope.SOURCE, source=source, state=State.HALTED, reason="drawdown")
    control_set(scope=Scope.SOURCE, source=source, state=State.ACTIVE, reason="re-armed")
    events = TradingControlEvent.objects.filter(source=source).order_by("pgh_id")
    assert [(e.pgh_label, e.state, e.reason) for e in events] == [
        ("insert", "active", ""),
        ("update", "halted", "drawdown"),
        ("update", "active", "re-armed"),
    ]
