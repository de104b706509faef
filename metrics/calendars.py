"""Exchanges' trading sessions from the `exchange-calendars` package, kept per process.

Building a calendar is slow (pandas: about a second with the import, the first time
in a process), so each exchange's sessions are read once into plain UTC spans
(`metrics.timetables.Sessions`) and kept for the life of the process; an evaluation
asks the kept spans, never pandas. They cover about a year on either side of the
instants asked about, and are read again, wider, when an instant comes near an edge
(a process running for a year, a test about a date long past).
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .timetables import Segment, Sessions

logger = logging.getLogger(__name__)

# Read this far on either side of the instant that needed the calendar...
_REACH: Final = timedelta(days=400)
# ...and again once an instant comes this close to an edge.
_MARGIN: Final = timedelta(days=30)

_lock = threading.Lock()
_kept: dict[str, ExchangeSessions] = {}


class UnknownExchange(ValueError):
    """No calendar of that name in `exchange-calendars`."""


def _xcals() -> Any:
    import exchange_calendars  # slow (pandas): only where an exchange is asked about

    return exchange_calendars


@functools.cache
def exchange_codes() -> tuple[str, ...]:
    """Every exchange calendar's code (XNYS, XLON, CMES...), aliases left out."""
    return tuple(sorted(_xcals().get_calendar_names(include_aliases=False)))


def exchange_code(name: str) -> str:
    """The calendar's code for `name` (a code or an alias: NYSE -> XNYS); else
    UnknownExchange naming a few codes."""
    xcals = _xcals()
    wanted = name.strip().upper() if name.strip().upper() != "24/7" else "24/7"
    names = set(xcals.get_calendar_names(include_aliases=True))
    if wanted not in names and name.strip() not in names:
        raise UnknownExchange(
            f"{name!r} is not an exchange calendar: use a code such as XNYS, XNAS, XLON, "
            "XETR, XTKS or CMES (`tradewatch schedule exchanges` lists them all)"
        )
    found: str = xcals.resolve_alias(wanted if wanted in names else name.strip())
    return found


def _spans(code: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The open spans of `code`'s sessions from `start` to `end` (breaks left out)."""
    xcals = _xcals()
    with warnings.catch_warnings():
        # The package's own use of pandas APIs that pandas means to change: not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            calendar = xcals.get_calendar(
                code, start=start.date().isoformat(), end=end.date().isoformat()
            )
        except ValueError:
            # Outside the dates the calendar can be made for: its own default range (the
            # spans beyond it are missing, so the exchange reads as closed there).
            calendar = xcals.get_calendar(code)
        schedule = calendar.schedule
        columns = {
            name: [None if value != value else value.to_pydatetime() for value in schedule[name]]
            for name in ("open", "break_start", "break_end", "close")
        }
    spans = []
    for opens, pause, resumes, closes in zip(
        columns["open"], columns["break_start"], columns["break_end"], columns["close"],
        strict=True,
    ):  # fmt: skip
        if pause is not None and resumes is not None:
            spans += [(opens, pause), (resumes, closes)]
        else:
            spans.append((opens, closes))
    return [(a.astimezone(UTC), b.astimezone(UTC)) for a, b in spans]


class ExchangeSessions(Sessions):
    """An exchange's sessions, read again wider when asked near the edge of what is read."""

    def __init__(self, code: str, start: datetime, end: datetime) -> None:
        self.code = code
        super().__init__(_spans(code, start, end), name=f"{code} sessions", covered=(start, end))

    def _segment(self, at: datetime) -> Segment:
        assert self.covered is not None
        first, last = self.covered
        if at - _MARGIN < first or at + _MARGIN > last:
            wider = exchange_sessions(code=self.code, at=at)
            if wider is not self:
                self.spans, self.starts, self.covered = wider.spans, wider.starts, wider.covered
        return super()._segment(at)


def exchange_sessions(*, code: str, at: datetime) -> ExchangeSessions:
    """`code`'s sessions around `at` (kept: read from the package once per process)."""
    kept = _kept.get(code)
    if kept is not None and kept.covered is not None:
        first, last = kept.covered
        if first + _MARGIN <= at <= last - _MARGIN:
            return kept
    with _lock:
        kept = _kept.get(code)
        start, end = at - _REACH, at + _REACH
        if kept is not None and kept.covered is not None:
            first, last = kept.covered
            if first + _MARGIN <= at <= last - _MARGIN:
                return kept
            start, end = min(start, first), max(end, last)
        logger.info("reading the %s calendar from %s to %s", code, start.date(), end.date())
        fresh = ExchangeSessions(code, start, end)
        _kept[code] = fresh
        return fresh


def forget_exchange_sessions() -> None:
    """Drop the kept sessions (tests)."""
    with _lock:
        _kept.clear()
