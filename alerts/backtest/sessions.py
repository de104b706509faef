"""When a rule judges a source over a period: its schedules' sessions, per instant.

The live engine asks `alerts.sessions.gate` at each evaluation whether every schedule
that concerns the rule on the source is open, and from when (clocks of silence start
there) or, closed, since which close (an alert open then follows the rule's
missing-data policy, once). A schedule's answer only changes at its segments' edges,
so the period is cut at every edge of every schedule concerned and `gate` asked once
per piece: the same answer, for every instant in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from alerts.sessions import gate
from metrics.timetables import Timetable

from .clocks import NEVER, Mask, maybe
from .data import Micros, micros, moment


@dataclass(frozen=True)
class SessionTimes:
    """Per instant: whether the rule judges the source (`open`), the latest opening of
    its schedules (NEVER: open for ever), the latest close when closed (NEVER: not
    known), and the next instant in session (the number of instants: none)."""

    open: Mask
    opened: Micros
    closed: Micros
    resume: Micros
    describe: str

    def closed_at(self, index: int) -> datetime | None:
        return maybe(int(self.closed[index]))


def _edges(table: Timetable, start: datetime, end: datetime) -> list[datetime]:
    """Where `table` opens or closes within (start, end]."""
    edges: list[datetime] = []
    at = start
    while True:
        until = table.segment(at).until
        if until is None or until > end:
            return edges
        edges.append(until)
        at = until


def session_times(tables: Sequence[Timetable], times: Micros) -> SessionTimes | None:
    """The sessions of `tables` at each of `times` (sorted); None: always open."""
    if not tables or not len(times):
        return None
    start, end = moment(int(times[0])), moment(int(times[-1]))
    pieces = sorted({start}.union(*(_edges(table, start, end) for table in tables)))
    bounds = np.searchsorted(times, [micros(piece) for piece in pieces], side="left")
    count = len(times)
    is_open = np.zeros(count, dtype=bool)
    opened = np.full(count, NEVER, dtype=np.int64)
    closed = np.full(count, NEVER, dtype=np.int64)
    for piece, lo, hi in zip(pieces, bounds, [*bounds[1:], count], strict=True):
        session = gate(list(tables), piece)
        is_open[lo:hi] = session.open
        if session.opened_at is not None:
            opened[lo:hi] = micros(session.opened_at)
        if session.closed_at is not None:
            closed[lo:hi] = micros(session.closed_at)
    # The next instant in session, from each instant on.
    next_open = np.where(is_open, np.arange(count, dtype=np.int64), count)
    resume = np.minimum.accumulate(next_open[::-1])[::-1].copy()
    return SessionTimes(
        is_open, opened, closed, resume, " and ".join(table.describe() for table in tables)
    )
