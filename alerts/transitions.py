"""What a finding does to an alert: its next state and the transitions to record.

Pure: where the alert stands and what evaluation found go in as plain values, the
outcome comes out as plain values; nothing is read or written. `alerts.lifecycle` locks
the alert, asks `breach_outcome` or `clear_outcome`, then saves the alert and records
the transitions (routing the ones sent) in one transaction. The rules are those of
"How an alert moves" in the README:

* a breach opens an alert pending (with a `for` duration) or firing; a pending alert
  fires once its breaches have lasted `for`;
* a firing alert at another severity records it: a raised severity is sent, a lowered
  one stays on the timeline;
* a firing, unacknowledged, uninhibited alert repeats each repeat interval of its
  severity, counted from the last notification; a change sent now is news enough;
* the first notification of an alert is `firing`: held back by a silence or by
  inhibition, it goes out as `firing` at the first evaluation after that ends, and
  nothing else about the alert is sent before it;
* an acknowledgement that reached its end lapses (sent);
* silenced: recorded and counted as sent (the repeat clock runs on), held back;
  inhibited: recorded, nothing sent, no repeats;
* the condition gone: a pending alert resolves without a word, a firing one resolves,
  after `keep_firing_for` when the rule has one (meanwhile it keeps firing, repeats and
  all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Alert, AlertTransition, Rule

Kind = AlertTransition.Kind
State = Alert.State
MissingData = Rule.MissingData

# Transitions that should reach people; the others are for the timeline only.
NOTIFYING = frozenset(
    {
        Kind.FIRING,
        Kind.SEVERITY_RAISED,
        Kind.REPEAT,
        Kind.RESOLVED,
        Kind.ACKNOWLEDGED,
        Kind.ACKNOWLEDGEMENT_EXPIRED,
    }
)

# Whether a silence holds the alert's notifications back now. Asked only when a
# notification is about to go out: the answer may cost a query.
SilenceCheck = Callable[[], bool]


@dataclass(frozen=True, kw_only=True)
class Standing:
    """Where an open alert stands: what its next transitions depend on."""

    state: str  # State.PENDING or State.FIRING
    severity: int
    first_seen: datetime
    inhibited: bool = False
    # When its `firing` went out (None: held back so far, or still pending).
    announced_at: datetime | None = None
    # The repeat clock: the last notification, sent or held back by a silence.
    last_notified_at: datetime | None = None
    acknowledged: bool = False
    acknowledged_until: datetime | None = None
    # In `keep_firing_for`: when its condition cleared.
    condition_cleared_at: datetime | None = None


@dataclass(frozen=True)
class Step:
    """One transition to record, and whether it reaches people."""

    kind: str
    # Counts as a notification: routed to the policies' channels (or held back when
    # `silenced`), and the repeat clock restarts.
    notify: bool = False
    silenced: bool = False


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a finding does to an alert: the state it leaves and the transitions, in order."""

    state: str
    inhibited: bool
    steps: tuple[Step, ...] = ()
    # It fires now (pending until now, or a new alert firing at once).
    fired: bool = False
    # Its acknowledgement reached its end: repeats resume.
    acknowledgement_ended: bool = False
    # Its condition cleared now; it keeps firing for the rule's `keep_firing_for`.
    condition_cleared: bool = False
    # Its `firing` goes out now (first time, not held back).
    announced: bool = False
    # A notification now, sent or held back by a silence: the repeat clock restarts.
    notified: bool = False

    @property
    def kinds(self) -> list[str]:
        return [step.kind for step in self.steps]

    @property
    def sent(self) -> list[str]:
        """The transitions that reach people now (notified and not held back)."""
        return [step.kind for step in self.steps if step.notify and not step.silenced]


def announcement(kind: str, *, inhibited: bool, announced: bool, silenced: SilenceCheck) -> Step:
    """Whether one transition reaches people, given where the alert stands as it is recorded."""
    notify = kind in NOTIFYING and not inhibited
    held = notify and silenced()
    if notify and not held and not announced and kind != Kind.FIRING:
        # A receiver opens its incident on `firing`: nothing else about an alert is
        # sent before its firing was (it stays on the timeline).
        notify = False
    return Step(kind, notify=notify, silenced=held)


def finding_step(status: str, missing_data: str) -> str | None:
    """What an evaluation's status asks of the alert: "breach", "clear", "clear_missing"
    (the data stopped and the missing-data policy resolves), or None (keep it as it is:
    too few samples is not a verdict, nor no data under the policy "keep")."""
    if status in ("no_data", "insufficient_data"):
        if status == "insufficient_data" or missing_data == MissingData.KEEP:
            return None
        return "breach" if missing_data == MissingData.ALERT else "clear_missing"
    return "breach" if status == "breach" else "clear"


def breach_outcome(
    standing: Standing | None,
    *,
    severity: int,
    now: datetime,
    inhibited: bool,
    for_duration: timedelta,
    repeat_every: timedelta,
    silenced: SilenceCheck,
) -> Outcome:
    """What a breach at `severity` does to the open alert (`standing`; None: none is open).

    `inhibited`: whether inhibition (an active kill switch) mutes the alert now;
    `repeat_every`: the repeat interval of `severity`; `silenced`: whether a silence
    holds the alert back at `severity`.
    """
    if standing is None:
        fires = for_duration <= timedelta(0)
        return _outcome(
            State.FIRING if fires else State.PENDING,
            [Kind.FIRING if fires else Kind.PENDING], inhibited=inhibited,
            announced=False, silenced=silenced, fired=fires,
        )  # fmt: skip
    kinds: list[str] = _inhibition_change(standing, inhibited)
    state = standing.state
    fired = state == State.PENDING and now - standing.first_seen >= for_duration
    if fired:
        state = State.FIRING
        kinds.append(Kind.FIRING)
    if severity != standing.severity and state == State.FIRING and not fired:
        kinds.append(
            Kind.SEVERITY_RAISED if severity > standing.severity else Kind.SEVERITY_LOWERED
        )
    due = _due(standing, state, kinds, now=now, inhibited=inhibited,
               repeat_every=repeat_every, silenced=silenced)  # fmt: skip
    return _outcome(
        state, due.kinds, inhibited=inhibited, announced=standing.announced_at is not None,
        silenced=silenced, fired=fired, acknowledgement_ended=due.acknowledgement_ended,
    )  # fmt: skip


def clear_outcome(
    standing: Standing,
    *,
    now: datetime,
    inhibited: bool,
    missing: bool,
    keep_firing_for: timedelta,
    repeat_every: timedelta,
    silenced: SilenceCheck,
) -> Outcome:
    """What the condition clearing does to an open alert.

    `missing`: it cleared because the data stopped and the rule's missing-data policy
    resolves (no `keep_firing_for` then); `repeat_every`: the repeat interval of the
    alert's severity; `silenced`: whether a silence holds the alert back.
    """
    if standing.state == State.PENDING:
        # It never fired: close it without telling anyone.
        return Outcome(
            state=State.RESOLVED, inhibited=standing.inhibited, steps=(Step(Kind.RESOLVED),)
        )
    kinds = _inhibition_change(standing, inhibited)
    cleared_at = standing.condition_cleared_at
    if not missing and keep_firing_for > timedelta(0):
        cleared = cleared_at is None
        if cleared:
            cleared_at = now
            kinds.append(Kind.CONDITION_CLEARED)
        assert cleared_at is not None
        if now - cleared_at < keep_firing_for:
            # Still firing: what falls due on a firing alert falls due now too.
            due = _due(standing, State.FIRING, kinds, now=now, inhibited=inhibited,
                       repeat_every=repeat_every, silenced=silenced)  # fmt: skip
            return _outcome(
                State.FIRING, due.kinds, inhibited=inhibited,
                announced=standing.announced_at is not None, silenced=silenced,
                acknowledgement_ended=due.acknowledgement_ended, condition_cleared=cleared,
            )  # fmt: skip
    # The resolve goes out as the inhibition stands now, not as it stood before.
    return _outcome(
        State.RESOLVED, [*kinds, Kind.RESOLVED], inhibited=inhibited,
        announced=standing.announced_at is not None, silenced=silenced,
    )  # fmt: skip


def _inhibition_change(standing: Standing, inhibited: bool) -> list[str]:
    """The alert inhibited, or no longer, as evaluation found it now."""
    if inhibited == standing.inhibited:
        return []
    return [Kind.INHIBITED if inhibited else Kind.UNINHIBITED]


@dataclass(frozen=True)
class _Due:
    kinds: list[str]
    acknowledgement_ended: bool


def _due(
    standing: Standing,
    state: str,
    kinds: Sequence[str],
    *,
    now: datetime,
    inhibited: bool,
    repeat_every: timedelta,
    silenced: SilenceCheck,
) -> _Due:
    """`kinds` and what time has made due on the open alert: its firing held back by
    inhibition or a silence that no longer holds, an ended acknowledgement (a pending
    alert's too: recorded then, not sent), a repeat."""
    due = list(kinds)
    firing = state == State.FIRING
    if (
        firing
        and standing.announced_at is None
        and not inhibited
        and Kind.FIRING not in due
        and not silenced()
    ):
        # Announced now, as `firing` (with the severity it has now), not as a repeat or a
        # change: a receiver opens its incident on `firing`.
        due = [k for k in due if k not in (Kind.SEVERITY_RAISED, Kind.SEVERITY_LOWERED)]
        due.append(Kind.FIRING)
    acknowledged = standing.acknowledged
    ended = (
        acknowledged
        and standing.acknowledged_until is not None
        and standing.acknowledged_until <= now
    )
    if ended:
        acknowledged = False
        due.append(Kind.ACKNOWLEDGEMENT_EXPIRED)
    if (
        firing
        # A change recorded now that reaches people is news enough; one that does not
        # (a lowered severity, inhibition ending) leaves a due repeat due.
        and not any(kind in NOTIFYING for kind in due)
        and not acknowledged
        and not inhibited
        and (standing.last_notified_at is None or now - standing.last_notified_at >= repeat_every)
    ):
        due.append(Kind.REPEAT)
    return _Due(due, ended)


def _outcome(
    state: str,
    kinds: Sequence[str],
    *,
    inhibited: bool,
    announced: bool,
    silenced: SilenceCheck,
    fired: bool = False,
    acknowledgement_ended: bool = False,
    condition_cleared: bool = False,
) -> Outcome:
    """The outcome with each transition's announcement, decided in order: a `firing`
    that goes out lets the transitions after it go out too."""
    steps = []
    announced_now = notified = False
    for kind in kinds:
        step = announcement(
            kind, inhibited=inhibited, announced=announced or announced_now, silenced=silenced
        )
        if step.notify and not step.silenced and kind == Kind.FIRING:
            announced_now = announced_now or not announced
        notified = notified or step.notify
        steps.append(step)
    return Outcome(
        state=state, inhibited=inhibited, steps=tuple(steps), fired=fired,
        acknowledgement_ended=acknowledgement_ended, condition_cleared=condition_cleared,
        announced=announced_now, notified=notified,
    )  # fmt: skip
