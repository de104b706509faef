"""Trading state: which controls cover a source, the state it must obey, and changing them.

A control (`TradingControl`) sets `active`, `reduce_only` or `halted` on one source, on
every source with a tag, or globally. The state a source must obey is the strictest of
the controls covering it, so a global halt wins over a source's `active`; of equally
strict ones the widest is reported (global, then tag, then source), so a bot is told
about the halt that will outlast its own re-arm. A `reduce_only` past its expiry counts
as `active`.

Every ingestion answer carries the state, so reading it must cost no query: each
process keeps a copy of every control (a few rows), tagged with a generation the shared
cache holds (`core.generations`); a change writes a new generation when it commits,
so every process reads the controls again at its next request. Resolution itself is a
pure function of that copy and the time.

Changing a control (`control_set`) is the one primitive: the services people and rules
call (`alerts.control`) check permissions, record the change on the alert that caused
it and tell trading systems through their recovery channels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.events import TRADING_STATE, Event, events_publish
from core.generations import KeptCopy, generation_current
from core.redis_cache import cache_key, redis_cache_client

from .models import Source, Tag, TradingControl

State = TradingControl.State
Scope = TradingControl.Scope

RANK: Final = {State.ACTIVE: 0, State.REDUCE_ONLY: 1, State.HALTED: 2}
# Of equally strict controls, the one reported: the widest (it outlasts the others).
_WIDTH: Final = {Scope.ALL: 2, Scope.TAG: 1, Scope.SOURCE: 0}

CONTROLS_GENERATION: Final = "trading-controls-generation"
# Redis pub/sub channel told of each change once it commits: wakes held long polls at
# once (`monitoring_site.held_polls`), which otherwise find it by reading the generation.
CONTROLS_ANNOUNCED: Final = "trading-controls-changed"
# Bounds how long a change made straight in the database (or a source's tags edited,
# which bumps no generation) can go unseen.
CONTROLS_TTL_SECONDS: Final = 5.0


@dataclass(frozen=True, kw_only=True)
class Control:
    """One control as plain values."""

    id: int
    scope: str
    source_id: int | None
    tag_id: int | None
    tag: str | None
    state: str
    reason: str
    set_by: str | None
    set_by_rule: str
    set_via: str
    alert_id: int | None
    set_at: datetime
    expires_at: datetime | None

    def state_at(self, now: datetime) -> str:
        """Its state now: a `reduce_only` past its expiry is `active` again."""
        if self.expires_at is not None and self.expires_at <= now:
            return State.ACTIVE
        return self.state

    @classmethod
    def of(cls, row: TradingControl) -> Control:
        return cls(
            id=row.pk,
            scope=row.scope,
            source_id=row.source_id,
            tag_id=row.tag_id,
            tag=row.tag.name if row.tag is not None else None,
            state=row.state,
            reason=row.reason,
            set_by=row.set_by.get_username() if row.set_by is not None else None,
            set_by_rule=row.set_by_rule,
            set_via=row.set_via,
            alert_id=row.alert_id,
            set_at=row.set_at,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True, kw_only=True)
class TradingState:
    """The state one source must obey, and the control that decided it (None: no control)."""

    state: str
    decided_by: Control | None = None

    @property
    def may_open_positions(self) -> bool:
        return self.state == State.ACTIVE

    @property
    def etag(self) -> str:
        """Changes whenever anything a bot is told changes (state, reason, who, expiry)."""
        control = self.decided_by
        basis = self.state if control is None else f"{self.state}|{control.id}|{control.set_at}"
        if control is not None:
            basis += f"|{control.expires_at}|{control.reason}"
        return '"' + hashlib.sha256(basis.encode()).hexdigest()[:20] + '"'

    def as_dict(self) -> dict[str, Any]:
        """What a trading system is told (the control endpoint's body)."""
        control = self.decided_by
        return {
            "state": self.state,
            "may_open_positions": self.may_open_positions,
            "scope": control.scope if control else None,
            "tag": control.tag if control else None,
            "reason": control.reason if control else "",
            "set_by": (control.set_by or control.set_by_rule or None) if control else None,
            "alert_id": control.alert_id if control else None,
            "since": control.set_at.isoformat() if control else None,
            "expires_at": control.expires_at.isoformat()
            if control and control.expires_at
            else None,
        }


ACTIVE: Final = TradingState(state=State.ACTIVE)


def effective_state(controls: Iterable[Control], now: datetime) -> TradingState:
    """The strictest state of `controls` at `now`; of equal ones the widest control."""
    chosen: Control | None = None
    chosen_key = (-1, -1)
    for control in controls:
        state = control.state_at(now)
        key = (RANK[State(state)], _WIDTH[Scope(control.scope)])
        if key > chosen_key:
            chosen, chosen_key = control, key
    if chosen is None or chosen_key[0] == 0:
        # Nothing holds it back. The source's own control (a re-arm) says who and when.
        own = [c for c in controls if c.scope == Scope.SOURCE]
        return TradingState(state=State.ACTIVE, decided_by=own[0] if own else None)
    return TradingState(state=chosen.state_at(now), decided_by=chosen)


@dataclass(frozen=True)
class Controls:
    """Every control, indexed by target, with the tags of the sources a tag control covers."""

    everything: Control | None = None
    by_tag: dict[int, Control] = field(default_factory=dict)
    by_source: dict[int, Control] = field(default_factory=dict)
    tags_of: dict[int, frozenset[int]] = field(default_factory=dict)

    def covering(self, source_id: int) -> list[Control]:
        found = [self.by_tag[t] for t in self.tags_of.get(source_id, ()) if t in self.by_tag]
        if self.everything is not None:
            found.append(self.everything)
        if source_id in self.by_source:
            found.append(self.by_source[source_id])
        return found

    def state_of(self, source_id: int, now: datetime | None = None) -> TradingState:
        return effective_state(self.covering(source_id), now or timezone.now())


def controls_read() -> Controls:
    """Every control from the database (a few rows: one per target ever controlled)."""
    rows = [Control.of(row) for row in TradingControl.objects.select_related("set_by", "tag")]
    by_tag = {c.tag_id: c for c in rows if c.scope == Scope.TAG and c.tag_id is not None}
    tags_of: dict[int, set[int]] = {}
    if by_tag:
        links = Source.tags.through.objects.filter(tag_id__in=list(by_tag)).values_list(
            "source_id", "tag_id"
        )
        for source_id, tag_id in links:
            tags_of.setdefault(source_id, set()).add(tag_id)
    return Controls(
        everything=next((c for c in rows if c.scope == Scope.ALL), None),
        by_tag=by_tag,
        by_source={c.source_id: c for c in rows if c.scope == Scope.SOURCE and c.source_id},
        tags_of={source_id: frozenset(tags) for source_id, tags in tags_of.items()},
    )


_controls: KeptCopy[Controls] = KeptCopy(
    CONTROLS_GENERATION, what="trading controls", ttl_seconds=CONTROLS_TTL_SECONDS
)


def controls_current() -> Controls:
    """This process's copy of the controls, read again once a change is committed."""
    return _controls.get(controls_read)


def controls_generation() -> object:
    """The controls' generation in the shared cache (changes when a control changes)."""
    return generation_current(CONTROLS_GENERATION, what="trading controls")


def forget_controls() -> None:
    """Read the controls afresh in this process (tests)."""
    _controls.forget()


def trading_state(source_id: int, *, now: datetime | None = None) -> TradingState:
    """The state `source_id` must obey now: no query while no control changed."""
    return controls_current().state_of(source_id, now)


# --- changing a control ------------------------------------------------------------------


class ControlRefused(ValueError):
    """The change is not allowed as asked (no note, an expiry on a halt, ...)."""


@dataclass(frozen=True)
class SourceChange:
    """What one change did to one source's effective state."""

    source_id: int
    source_name: str
    before: TradingState
    after: TradingState

    @property
    def changed(self) -> bool:
        return self.before.etag != self.after.etag

    def event_data(self) -> dict[str, Any]:
        """The change as the live event stream sends it: the new state, and the old one."""
        return {
            "source": {"id": self.source_id, "name": self.source_name},
            **self.after.as_dict(),
            "previous_state": self.before.state,
        }


@dataclass(frozen=True)
class ControlChange:
    """One control changed, and the sources it covers with their states before and after."""

    control: TradingControl
    previous_state: str
    sources: list[SourceChange]

    @property
    def changed_sources(self) -> list[SourceChange]:
        return [change for change in self.sources if change.changed]


def covered_sources(*, scope: str, source: Source | None, tag: Tag | None) -> list[Source]:
    """The sources a control of this target covers (enabled or not)."""
    if scope == Scope.SOURCE:
        assert source is not None
        return [source]
    queryset = Source.objects.only("id", "name").order_by("id")
    if scope == Scope.TAG:
        assert tag is not None
        queryset = queryset.filter(tags=tag)
    return list(queryset)


def _locked_control(*, scope: str, source: Source | None, tag: Tag | None) -> TradingControl:
    """The control of this target, locked; created `active` when there is none yet."""
    target: dict[str, Any] = {"scope": scope}
    if scope == Scope.SOURCE:
        target["source"] = source
    elif scope == Scope.TAG:
        target["tag"] = tag
    row = TradingControl.objects.select_for_update().filter(**target).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return TradingControl.objects.create(
                **target, state=State.ACTIVE, reason="", set_at=timezone.now()
            )
    except IntegrityError:  # created by someone else a moment ago
        return TradingControl.objects.select_for_update().get(**target)


def control_set(
    *,
    scope: str,
    state: str,
    reason: str,
    source: Source | None = None,
    tag: Tag | None = None,
    by: AbstractBaseUser | None = None,
    rule: str = "",
    via: str = "",
    alert_id: int | None = None,
    expires_at: datetime | None = None,
    tighten_only: bool = False,
    now: datetime | None = None,
) -> ControlChange | None:
    """Set the control of one target (in the caller's transaction, or its own).

    `tighten_only` (rules): change nothing unless the new state is stricter than the
    target's own control now (a `reduce_only` without expiry is stricter than one with).
    None when nothing changed. Every process reads the controls afresh once it commits.
    """
    now = now or timezone.now()
    reason = reason.strip()
    if not reason:
        raise ControlRefused("Say why in a note: it is shown to everyone and to the bot.")
    if expires_at is not None and state != State.REDUCE_ONLY:
        raise ControlRefused("Only reduce only can expire; halts end when someone re-arms.")
    if expires_at is not None and expires_at <= now:
        raise ControlRefused("The expiry must be in the future.")
    if (scope == Scope.SOURCE and source is None) or (scope == Scope.TAG and tag is None):
        raise ControlRefused(f"A {scope} control needs its {scope}.")
    with transaction.atomic():
        row = _locked_control(scope=scope, source=source, tag=tag)
        current = Control.of(row)
        if tighten_only and not _stricter(state, expires_at, current, now):
            return None
        sources = covered_sources(scope=scope, source=source, tag=tag)
        before = controls_read()
        previous_state = current.state_at(now)
        row.state = state
        row.reason = reason[:1000]
        row.set_by = by if by is not None and by.pk is not None else None  # type: ignore[assignment]
        row.set_by_rule = rule[:200]
        row.set_via = via[:20]
        row.alert_id = alert_id
        row.set_at = now
        row.expires_at = expires_at
        row.save()
        after = controls_read()
        _controls.changed()
        transaction.on_commit(_announce, robust=True)
        change = ControlChange(
            control=row,
            previous_state=previous_state,
            sources=[
                SourceChange(
                    source_id=s.pk,
                    source_name=s.name,
                    before=before.state_of(s.pk, now),
                    after=after.state_of(s.pk, now),
                )
                for s in sources
            ],
        )
        events_publish(
            [
                Event(TRADING_STATE, changed.source_id, changed.event_data())
                for changed in change.changed_sources
            ]
        )
    return change


def _announce() -> None:
    """Publish the change (after the generation's bump, registered first)."""
    client = redis_cache_client()
    if client is not None:
        client.publish(cache_key(CONTROLS_ANNOUNCED), b"1")


def _stricter(state: str, expires_at: datetime | None, current: Control, now: datetime) -> bool:
    new, old = RANK[State(state)], RANK[State(current.state_at(now))]
    if new != old:
        return new > old
    return new > 0 and expires_at is None and current.expires_at is not None


def controls_in_force(now: datetime | None = None) -> list[Control]:
    """The controls holding trading back now (not `active`), widest first (banners)."""
    now = now or timezone.now()
    current = controls_current()
    found: list[Control] = [
        *([current.everything] if current.everything else []),
        *sorted(current.by_tag.values(), key=lambda c: c.tag or ""),
        *sorted(current.by_source.values(), key=lambda c: c.set_at),
    ]
    return [control for control in found if control.state_at(now) != State.ACTIVE]


def states_of(source_ids: Sequence[int], now: datetime | None = None) -> dict[int, TradingState]:
    """Each source's state (lists: the dashboard, the safety view)."""
    current = controls_current()
    now = now or timezone.now()
    return {source_id: current.state_of(source_id, now) for source_id in source_ids}
