"""Schedules as timetables, kept per process, and what they say for people.

`schedule_book()` is this process's copy of every schedule made into a timetable
(`metrics.timetables`; exchange sessions read once per process by `metrics.calendars`)
and of every source's expectations: read again only once a schedule, an expectation
or a source is edited (`core.generations`), so a rule evaluation or a dashboard read
asks the copy and pays no query and no pandas.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.utils import timezone

from core.cli_text import format_age
from core.generations import KeptCopy

from . import signals
from .calendars import UnknownExchange, exchange_code, exchange_sessions
from .models import Expectation, Schedule, Source
from .timetables import (
    ALWAYS,
    Inverted,
    Timetable,
    Weekly,
    Window,
    clock_start,
    window_from_data,
    window_parse,
    zone_of,
)

logger = logging.getLogger(__name__)

SCHEDULES_GENERATION: Final = "schedules-generation"
SCHEDULES_TTL_SECONDS: Final = 300.0


# --- checking and building ----------------------------------------------------------


def windows_read(windows: Any) -> list[Window]:
    """The stored windows ("mon-fri 09:30-16:00", or {"days", "start", "end"} mappings);
    ValueError naming the one at fault."""
    if not isinstance(windows, list):
        raise ValueError("must be a list of windows such as "
                         '{"days": ["sun"], "start": "02:00", "end": "04:00"}')  # fmt: skip
    read = []
    for index, item in enumerate(windows):
        if isinstance(item, str):
            try:
                read.append(window_parse(item))
            except ValueError as exc:
                raise ValueError(f"window {index + 1}: {exc}") from None
            continue
        if not isinstance(item, dict):
            raise ValueError(f"window {index + 1}: must be text such as 'sun 02:00-04:00'")
        unknown = set(item) - {"days", "start", "end"}
        if unknown:
            raise ValueError(f"window {index + 1}: unknown field {sorted(unknown)[0]!r}")
        try:
            read.append(window_from_data(item))
        except ValueError as exc:
            raise ValueError(f"window {index + 1}: {exc}") from None
    return read


def schedule_problems(*, kind: str, exchange: str, zone: str, windows: Any) -> dict[str, str]:
    """What is wrong with a schedule's fields, by field name (empty: nothing)."""
    problems: dict[str, str] = {}
    if kind == Schedule.Kind.EXCHANGE:
        if not exchange.strip():
            problems["exchange"] = "An exchange schedule needs the calendar's code (e.g. XNYS)."
        else:
            try:
                exchange_code(exchange)
            except UnknownExchange as exc:
                problems["exchange"] = str(exc)
    elif kind == Schedule.Kind.WEEKLY:
        try:
            zone_of(zone)
        except ValueError as exc:
            problems["timezone"] = str(exc)
        try:
            if not windows_read(windows):
                problems["windows"] = "A weekly schedule needs at least one window."
        except ValueError as exc:
            problems["windows"] = str(exc)
    return problems


def windows_normalised(windows: Any) -> list[str]:
    """The windows as stored: "mon-fri 09:30-16:00" (days in week order)."""
    return [window.text() for window in windows_read(windows)]


def timetable_of(schedule: Schedule, *, now: datetime | None = None) -> Timetable:
    """The schedule's timetable (exchange sessions around `now`).

    A schedule that cannot be made into one (edited straight in the database into
    something invalid) is always open, so its rules keep watching; the log says why.
    """
    try:
        table: Timetable
        if schedule.kind == Schedule.Kind.EXCHANGE:
            table = exchange_sessions(
                code=exchange_code(schedule.exchange), at=now or timezone.now()
            )
        elif schedule.kind == Schedule.Kind.WEEKLY:
            table = Weekly(windows_read(schedule.windows), schedule.timezone)
        else:
            table = ALWAYS
    except ValueError as exc:
        logger.warning("schedule %s is read as always open: %s", schedule.name, exc)
        return ALWAYS
    return Inverted(table) if schedule.invert else table


@dataclass(frozen=True)
class ExpectationSpec:
    """A source's expectation of one signal, defaults filled in."""

    signal: str
    grace: timedelta
    schedule_id: int | None
    enabled: bool = True


@dataclass
class ScheduleBook:
    """Every schedule's timetable and name, and every source's expectations."""

    timetables: dict[int, Timetable] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    expectations: dict[int, dict[str, ExpectationSpec]] = field(default_factory=dict)

    def timetable(self, schedule_id: int | None) -> Timetable:
        """The timetable of `schedule_id` (None, or one deleted meanwhile: always)."""
        if schedule_id is None:
            return ALWAYS
        return self.timetables.get(schedule_id, ALWAYS)

    def expectation(self, source_id: int, signal: str) -> ExpectationSpec:
        """The source's expectation of `signal` (its row's, or the defaults)."""
        found = self.expectations.get(source_id, {}).get(signal)
        if found is not None:
            return found
        return ExpectationSpec(signal, signals.DEFAULT_GRACE[signal], None)

    def expectation_timetable(self, source: Source, signal: str) -> Timetable:
        """The timetable `signal` of `source` is watched on: its own, else the source's."""
        spec = self.expectation(source.pk, signal)
        return self.timetable(spec.schedule_id if spec.schedule_id else source.schedule_id)


def schedule_book_read(*, now: datetime | None = None) -> ScheduleBook:
    """Every schedule and expectation, read now (two queries)."""
    book = ScheduleBook()
    for schedule in Schedule.objects.all():
        book.timetables[schedule.pk] = timetable_of(schedule, now=now)
        book.names[schedule.pk] = schedule.name
    for expectation in Expectation.objects.all():
        book.expectations.setdefault(expectation.source_id, {})[expectation.signal] = (
            ExpectationSpec(
                signal=expectation.signal,
                grace=expectation.grace or signals.DEFAULT_GRACE[expectation.signal],
                schedule_id=expectation.schedule_id,
                enabled=expectation.enabled,
            )
        )
    return book


_book: KeptCopy[ScheduleBook] = KeptCopy(
    SCHEDULES_GENERATION, what="schedules", ttl_seconds=SCHEDULES_TTL_SECONDS
)


def schedule_book() -> ScheduleBook:
    """This process's copy of the schedules and expectations."""
    return _book.get(schedule_book_read)


def schedule_timetable(schedule_id: int | None) -> Timetable:
    """The timetable of `schedule_id` (None: always open, with no read at all)."""
    return ALWAYS if schedule_id is None else schedule_book().timetable(schedule_id)


def schedules_changed() -> None:
    """A schedule or an expectation changed: every process reads them again."""
    _book.changed()


def forget_schedules() -> None:
    """Read schedules afresh in this process (tests)."""
    _book.forget()


# --- what a schedule says, for people ----------------------------------------------


@dataclass(frozen=True)
class ScheduleState:
    """Whether a schedule is open at an instant, and its next open and close."""

    open: bool
    next_open: datetime | None
    next_close: datetime | None
    describe: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "next_open": self.next_open,
            "next_close": self.next_close,
            "describe": self.describe,
        }


def schedule_state(table: Timetable, at: datetime) -> ScheduleState:
    return ScheduleState(
        open=table.is_open(at),
        next_open=table.next_open(at),
        next_close=table.next_close(at),
        describe=table.describe(),
    )


def schedules_state(
    schedules: Sequence[Schedule], *, now: datetime | None = None
) -> Mapping[int, ScheduleState]:
    """Each schedule's state now, from this process's timetables."""
    now = now or timezone.now()
    book = schedule_book()
    return {
        schedule.pk: schedule_state(
            book.timetables.get(schedule.pk) or timetable_of(schedule, now=now), now
        )
        for schedule in schedules
    }


def when_text(moment: datetime | None, now: datetime, *, short: bool = False) -> str:
    """ "Mon 2025-12-01 14:30 UTC (in 2d21h)": how a next open or close reads; `short`
    leaves the date out ("Mon 14:30 UTC (in 2d21h)"), for a column of reasons."""
    if moment is None:
        return "not known"
    local = timezone.localtime(moment)
    clock = local.strftime("%a %H:%M" if short else "%a %Y-%m-%d %H:%M")
    return f"{clock} {local.tzname()} (in {format_age(moment - now)})"


# --- writes ---------------------------------------------------------------------------


def schedule_create(
    *,
    name: str,
    kind: str,
    exchange: str = "",
    zone: str = "UTC",
    windows: Sequence[str] = (),
    invert: bool = False,
    description: str = "",
) -> Schedule:
    """Create a schedule with the model's own validation (ValidationError naming the field).

    `windows`: weekly windows as text ("mon-fri 09:30-16:00").
    """
    schedule = Schedule(
        name=name, kind=kind, exchange=exchange, timezone=zone, invert=invert,
        description=description,
    )  # fmt: skip
    try:
        schedule.windows = windows_normalised(list(windows))
    except ValueError as exc:
        raise ValidationError({"windows": str(exc)}) from None
    schedule.full_clean()
    schedule.save()
    return schedule


def heartbeat_clock(
    source: Source, last_seen: datetime, now: datetime, *, book: ScheduleBook | None = None
) -> tuple[bool, timedelta]:
    """(whether the source's schedule is closed now, how long its heartbeat has been due
    for: from its newest heartbeat, or from its session's opening when that is later)."""
    if source.schedule_id is None:
        return False, max(now - last_seen, timedelta(0))  # always open: nothing to read
    segment = (book or schedule_book()).timetable(source.schedule_id).segment(now)
    start = clock_start(last_seen, segment.since if segment.open else None) or last_seen
    return not segment.open, max(now - start, timedelta(0))
