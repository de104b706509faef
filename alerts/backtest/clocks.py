"""Clocks of silence over a period: absence rules and the "alive but not trading" signals.

An absence rule's value is the seconds since its clock started: the newest point (a
metric's sample, an event, a signal seen), or the latest opening of its schedules when
that is later (`metrics.timetables.clock_start`: a night or a holiday is never
silence), plus the source's grace for a signal. For every instant at once numpy works
out that value, to skip instants where no threshold can trigger (`windows`); at an
instant judged one by one the subject is built with the live engine's own functions
(`clock_start`, and for signals `metrics.signals`), as `judging.subjects` builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from alerts import engine
from alerts.judging import Subject
from metrics.timetables import clock_start

from .data import Floats, Micros, moment
from .windows import SeriesJudge, Windows

Mask = npt.NDArray[np.bool_]

# An instant with nothing to say: no point seen yet, or no opening (open for ever).
NEVER: Final = np.iinfo(np.int64).min


def at_or_before(stamps: Micros, times: Micros) -> Micros:
    """Per instant, the newest of sorted `stamps` at or before it (NEVER: none)."""
    index = np.searchsorted(stamps, times, side="right") - 1
    if not len(stamps):
        return np.full(len(times), NEVER, dtype=np.int64)
    found: Micros = np.where(index >= 0, stamps[np.maximum(index, 0)], NEVER)
    return found


def clocks_start(newest: Micros, opened: Micros | None) -> Micros:
    """`clock_start` for every instant: the newest point, or the opening when later."""
    if opened is None:
        return newest
    later: Mask = (newest != NEVER) & (opened != NEVER) & (newest < opened)
    started: Micros = np.where(later, opened, newest)
    return started


def maybe(us: int) -> datetime | None:
    return None if us == NEVER else moment(us)


class Age(SeriesJudge):
    """ABSENCE: seconds since the clock started (plus `due_after`, a signal's grace).

    `newest`: per instant, the newest point (NEVER: none yet), by default the window's
    newest; `newest_at`: the same at one instant as the live engine computes it (by
    default read from `newest`); `opened`: per instant, the latest opening of the
    rule's schedules (None: no schedule); `slack`: how far (seconds) `newest` may be off
    what `newest_at` says (rounding of a tick's age).
    """

    def __init__(
        self,
        windows: Windows,
        *,
        newest: Micros | None = None,
        newest_at: Callable[[int], datetime | None] | None = None,
        opened: Micros | None = None,
        due_after: timedelta = timedelta(0),
        slack: float = 0.0,
    ) -> None:
        super().__init__(engine.RuleKind.ABSENCE, windows, min_samples=0)
        w = windows
        if newest is None:
            newest = at_or_before(w.ts, w.times)
        self.newest, self.opened, self.due_after = newest, opened, due_after
        self.newest_at = newest_at or (lambda index: maybe(int(self.newest[index])))
        start = clocks_start(newest, opened)
        self.seen: Mask = start != NEVER
        due = np.where(self.seen, start, 0) + due_after // timedelta(microseconds=1)
        self.point = np.where(self.seen, np.minimum(due, w.times), NEVER)
        with np.errstate(invalid="ignore"):
            self.age = np.where(self.seen, (w.times - self.point) / 1e6, np.nan)
        self.slack = slack

    def no_data(self) -> Mask:
        never: Mask = ~self.seen
        return never

    def enough(self) -> Mask:
        return self.seen

    def _approx(self) -> tuple[Floats, Floats]:
        return self.age, np.full(len(self.age), self.slack)

    def subject(self, index: int) -> Subject:
        """What `judging.subjects` hands the engine: a point where the clock says the
        source went silent (never after now)."""
        now = moment(int(self.windows.times[index]))
        opened = None if self.opened is None else maybe(int(self.opened[index]))
        start = clock_start(self.newest_at(index), opened)
        if start is None:
            return Subject({}, "{}", [])
        return Subject({}, "{}", [engine.Point(min(start + self.due_after, now), 0.0)])
