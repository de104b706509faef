"""When a schedule is open: pure answers about instants, from plain values.

No Django, no I/O, no clock: the caller gives the instant. A schedule is one of

* always open (crypto, the default);
* an exchange's trading sessions, given as their (open, close) spans in UTC (loaded by
  `metrics.calendars` from the `exchange-calendars` package: holidays, early closes
  and lunch breaks are already in the spans);
* recurring weekly windows in a time zone ("sun 02:00-04:00" in UTC, "mon-fri
  09:30-16:00" in America/New_York), kept to the wall clock across daylight-saving
  changes;

and may be inverted (open outside those sessions or windows: a rule that rests during
a maintenance window). Every answer comes from `segment(at)`: the longest stretch
around `at` in which the schedule stays open, or stays closed, with when it began and
when it ends (None: not within what is known, i.e. always). The last segment is kept,
so asking again within it (every evaluation of a cycle) costs a comparison.

Decisions, in one place:

* Spans are half-open: open at `open`, closed again at `close`. Spans that touch or
  overlap are one (a window to 24:00 and one from 00:00 the next day).
* A window's end at or before its start runs past midnight into the next day (22:00-
  06:00); "24:00" is the end of the day. A start that does not exist on a day
  daylight-saving time begins (02:30 in New York) is read with the offset before the
  change, as Python's zoneinfo does; one that exists twice is the first.
* Clocks that measure silence (heartbeats, absence rules, a source's signals) count
  from the later of the newest data and the open of the current stretch
  (`counting_from`), so a night or a lunch break is never counted as silence.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far from an instant weekly windows are laid out: past a week, a pattern that
# changes at all has changed (a span reaching the edge is one that never ends).
_WEEKLY_REACH: Final = timedelta(days=8)
_EPSILON: Final = timedelta(microseconds=1)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"the instant must be timezone-aware, got {at!r}")
    return at


def clock_start(newest: datetime | None, opened_at: datetime | None) -> datetime | None:
    """Where a clock of silence starts: the later of the newest data and the opening of
    the current open stretch (None: nothing was ever seen, so there is nothing to count)."""
    if newest is None:
        return None
    if opened_at is None or newest >= opened_at:
        return newest
    return opened_at


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch in which a schedule stays open (or closed): since when, until when.

    `since` None: open (closed) for as long as is known before; `until` None: for as
    long as is known after.
    """

    open: bool
    since: datetime | None
    until: datetime | None

    def holds(self, at: datetime) -> bool:
        return (self.since is None or self.since <= at) and (self.until is None or at < self.until)


class Timetable:
    """When a schedule is open. Subclasses answer `_segment`; the rest follows from it."""

    _kept: Segment | None = None

    def describe(self) -> str:  # pragma: no cover - every kind says itself
        raise NotImplementedError

    def _segment(self, at: datetime) -> Segment:  # pragma: no cover
        raise NotImplementedError

    def segment(self, at: datetime) -> Segment:
        """The stretch around `at` (kept: the next question usually falls inside it)."""
        kept = self._kept
        if kept is not None and kept.holds(_aware(at)):
            return kept
        found = self._segment(_aware(at))
        self._kept = found
        return found

    def is_open(self, at: datetime) -> bool:
        return self.segment(at).open

    @property
    def always_open(self) -> bool:
        return False

    def opened_at(self, at: datetime) -> datetime | None:
        """When the open stretch holding `at` began (None: closed, or open for ever)."""
        segment = self.segment(at)
        return segment.since if segment.open else None

    def next_open(self, at: datetime) -> datetime | None:
        """The next opening after `at` (after the current stretch when open now)."""
        segment = self.segment(at)
        if not segment.open:
            return segment.until
        if segment.until is None:
            return None
        return self.segment(segment.until).until

    def next_close(self, at: datetime) -> datetime | None:
        """The next close after `at` (after the next opening when closed now)."""
        segment = self.segment(at)
        if segment.open:
            return segment.until
        if segment.until is None:
            return None
        return self.segment(segment.until).until

    def last_close(self, at: datetime) -> datetime | None:
        """The latest close at or before `at` (None: none known)."""
        segment = self.segment(at)
        if not segment.open:
            return segment.since
        if segment.since is None:
            return None
        return self.segment(segment.since - _EPSILON).since

    def counting_from(self, at: datetime, newest: datetime | None) -> datetime | None:
        """Where a clock of silence starts at `at` (see `clock_start`)."""
        return clock_start(newest, self.opened_at(at))

    def sessions_between(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The open spans overlapping [start, end), clipped to it."""
        spans: list[tuple[datetime, datetime]] = []
        at = _aware(start)
        while at < end:
            segment = self.segment(at)
            until = end if segment.until is None else min(segment.until, end)
            if segment.open:
                spans.append((at, until))
            if segment.until is None:
                break
            at = until
        return spans


class Always(Timetable):
    """Open at every instant: the default (crypto trades all day, every day)."""

    _SEGMENT: Final = Segment(True, None, None)

    def describe(self) -> str:
        return "always"

    @property
    def always_open(self) -> bool:
        return True

    def _segment(self, at: datetime) -> Segment:
        return self._SEGMENT


ALWAYS: Final = Always()


def _merged(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _segment_in(
    spans: Sequence[tuple[datetime, datetime]],
    starts: Sequence[datetime],
    at: datetime,
    known: tuple[datetime, datetime] | None,
) -> Segment:
    """The segment holding `at` among sorted, merged `spans` (`starts` their starts).

    `known`: the stretch the spans are complete for; an edge of a span or gap lying on
    it is unknown beyond (None).
    """
    index = bisect.bisect_right(starts, at) - 1
    since: datetime | None
    until: datetime | None
    if index >= 0 and at < spans[index][1]:
        since, until = spans[index]
        opened = True
    else:
        since = spans[index][1] if index >= 0 else None
        until = spans[index + 1][0] if index + 1 < len(spans) else None
        opened = False
    if known is not None:
        first, last = known
        if since is not None and since <= first:
            since = None
        if until is not None and until >= last:
            until = None
    return Segment(opened, since, until)


class Sessions(Timetable):
    """Open during given spans (an exchange's sessions), closed between them.

    `covered`: the stretch the spans are known for (an exchange calendar covers some
    years); beyond it the schedule is closed with no known next opening.
    """

    def __init__(
        self,
        spans: Iterable[tuple[datetime, datetime]],
        *,
        name: str = "sessions",
        covered: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.spans = _merged(spans)
        self.starts = [start for start, _ in self.spans]
        self.name = name
        self.covered = covered

    def describe(self) -> str:
        return self.name

    def _segment(self, at: datetime) -> Segment:
        segment = _segment_in(self.spans, self.starts, at, None)
        if self.covered is not None:
            first, last = self.covered
            if at < first or at >= last:
                return Segment(False, None if at < first else last, first if at < first else None)
        return segment


@dataclass(frozen=True, slots=True)
class Window:
    """One weekly window: on `days` (0 Monday ... 6 Sunday; empty: every day), from
    `start` to `end` local time (`end` None: midnight ending the day)."""

    days: frozenset[int]
    start: time
    end: time | None

    def text(self) -> str:
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{days_text(self.days)} {self.start.strftime('%H:%M')}-{end}"


def days_text(days: frozenset[int]) -> str:
    """{0, 1, 2, 3, 4} -> "mon-fri"; empty or all seven -> "daily"."""
    if not days or len(days) == 7:
        return "daily"
    ordered = sorted(days)
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = [
        DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}"
        for run in runs
    ]
    return ",".join(parts)


_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def clock_parse(text: str, *, end: bool = False) -> time | None:
    """ "09:30" -> time(9, 30); "24:00" (an end only) -> None; ValueError otherwise."""
    match = _CLOCK.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day such as 09:30")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == 24:
        if minutes or not end:
            raise ValueError(f"{text!r}: 24:00 is only an end (the end of the day)")
        return None
    return time(hours, minutes)


def days_parse(value: str | Iterable[str]) -> frozenset[int]:
    """ "mon-fri", "sat,sun", "daily" or ["mon", "wed"] -> day numbers; ValueError else."""
    parts = value.replace(" ", "").lower().split(",") if isinstance(value, str) else list(value)
    days: set[int] = set()
    for raw in parts:
        part = str(raw).strip().lower()
        if part in ("daily", "every", "*"):
            return frozenset()
        if part == "weekdays":
            days |= {0, 1, 2, 3, 4}
            continue
        if part == "weekends":
            days |= {5, 6}
            continue
        first, dash, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first[:3])
            b = DAY_NAMES.index(last[:3]) if dash else a
        except ValueError:
            raise ValueError(
                f"{raw!r} is not a day: use mon, tue, wed, thu, fri, sat, sun, a range "
                "(mon-fri) or daily"
            ) from None
        day = a
        while True:
            days.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    return frozenset(days)


def window_parse(text: str) -> Window:
    """ "sun 02:00-04:00", "mon-fri 09:30-16:00", "daily 22:00-06:00" -> a Window."""
    parts = text.split()
    if len(parts) == 1:
        parts = ["daily", parts[0]]
    if len(parts) != 2 or "-" not in parts[1]:
        raise ValueError(f"{text!r}: write a window as DAYS HH:MM-HH:MM, e.g. sun 02:00-04:00")
    start_text, _, end_text = parts[1].partition("-")
    start = clock_parse(start_text)
    assert start is not None
    return Window(days_parse(parts[0]), start, clock_parse(end_text, end=True))


def window_from_data(data: dict[str, object]) -> Window:
    """A window stored as {"days": [...], "start": "HH:MM", "end": "HH:MM"}."""
    days = data.get("days") or []
    if not isinstance(days, list | tuple | str):
        raise ValueError("days must be a list of day names")
    start = clock_parse(str(data.get("start", "")))
    assert start is not None
    return Window(days_parse(days), start, clock_parse(str(data.get("end", "")), end=True))


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError naming it when there is none such."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (use an IANA name such as UTC or "
                         "America/New_York)") from None  # fmt: skip


class Weekly(Timetable):
    """Open during weekly windows on the wall clock of a time zone."""

    def __init__(self, windows: Iterable[Window], zone: str = "UTC") -> None:
        self.windows = tuple(windows)
        self.zone_name = zone
        self.zone = zone_of(zone)

    def describe(self) -> str:
        if not self.windows:
            return f"never ({self.zone_name})"
        return f"{', '.join(w.text() for w in self.windows)} {self.zone_name}"

    def _local(self, day: date, clock: time | None) -> datetime:
        if clock is None:
            day, clock = day + timedelta(days=1), time(0)
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The open spans of local days from `start` to `end` (whole days, merged)."""
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date() + timedelta(days=1)
        spans = []
        day = first
        while day <= last:
            for window in self.windows:
                if window.days and day.weekday() not in window.days:
                    continue
                opens = self._local(day, window.start)
                closes_on = day
                if window.end is not None and window.end <= window.start:
                    closes_on = day + timedelta(days=1)  # past midnight
                closes = self._local(closes_on, window.end)
                spans.append((opens, closes))
            day += timedelta(days=1)
        return _merged(spans)

    def _segment(self, at: datetime) -> Segment:
        first, last = at - _WEEKLY_REACH, at + _WEEKLY_REACH
        spans = self.spans(first, last)
        return _segment_in(spans, [s for s, _ in spans], at, (first, last))


class Inverted(Timetable):
    """Open exactly when `inner` is closed."""

    def __init__(self, inner: Timetable) -> None:
        self.inner = inner

    def describe(self) -> str:
        return f"outside {self.inner.describe()}"

    def _segment(self, at: datetime) -> Segment:
        inner = self.inner.segment(at)
        return Segment(not inner.open, inner.since, inner.until)
