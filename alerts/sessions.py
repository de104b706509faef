"""Rules and schedules: whether a rule judges a source now, and where its clocks start.

A rule is judged on a source only while every schedule that concerns the pair is open:
the rule's own, and for a rule about one of the source's expectations (its heartbeat,
its decisions, orders, market data, order rejects) the schedule of that expectation
(its own, else the source's). Clocks of silence start at the latest opening among
them, so a night or a lunch break is never silence (`metrics.timetables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from metrics import signals
from metrics.models import Source
from metrics.schedules import ExpectationSpec, ScheduleBook
from metrics.timetables import Timetable

from .loading import HEARTBEAT
from .models import Rule

HEARTBEAT_SIGNAL: Final = "heartbeat"


def rule_signal(rule: Rule) -> str | None:
    """The source expectation a rule is about: "heartbeat", a signal, or None."""
    if rule.kind == Rule.Kind.ABSENCE and rule.metric == HEARTBEAT:
        return HEARTBEAT_SIGNAL
    return signals.signal_of_metric(rule.metric)


@dataclass(frozen=True)
class Gate:
    """Whether a rule judges a source at an instant.

    `opened_at`: in session, the latest opening among its schedules (None: open for
    ever); `closed_at`: out of session, the latest close (None: not known).
    """

    open: bool
    opened_at: datetime | None = None
    closed_at: datetime | None = None


ALWAYS_OPEN: Final = Gate(True)


def timetables_of(rule: Rule, source: Source, book: ScheduleBook) -> list[Timetable]:
    """The schedules that concern `rule` on `source` (those always open left out)."""
    tables = []
    if rule.schedule_id is not None:
        tables.append(book.timetable(rule.schedule_id))
    signal = rule_signal(rule)
    if signal == HEARTBEAT_SIGNAL:
        tables.append(book.timetable(source.schedule_id))
    elif signal is not None:
        tables.append(book.expectation_timetable(source, signal))
    return [table for table in tables if not table.always_open]


def gate(tables: list[Timetable], now: datetime) -> Gate:
    """Open when every timetable is open now."""
    if not tables:
        return ALWAYS_OPEN
    segments = [table.segment(now) for table in tables]
    if all(segment.open for segment in segments):
        opened = [segment.since for segment in segments if segment.since is not None]
        return Gate(True, opened_at=max(opened, default=None))
    closes = [segment.since for segment in segments if not segment.open]
    known = [close for close in closes if close is not None]
    return Gate(False, closed_at=max(known) if len(known) == len(closes) else None)


def expectation_of(rule: Rule, source: Source, book: ScheduleBook) -> ExpectationSpec | None:
    """The source's expectation a signal rule judges (None: not a signal rule)."""
    signal = rule_signal(rule)
    if signal is None or signal == HEARTBEAT_SIGNAL:
        return None
    return book.expectation(source.pk, signal)
