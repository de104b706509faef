"""When a schedule is open: the pure answers (no database), and real exchange calendars."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from metrics.calendars import (
    UnknownExchange,
    exchange_code,
    exchange_sessions,
)
from metrics.timetables import (
    ALWAYS,
    Inverted,
    Segment,
    Sessions,
    Weekly,
    Window,
    days_parse,
    days_text,
    window_parse,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


# --- always ------------------------------------------------------------------------------


def test_always_is_open_at_every_instant_with_nothing_to_count_from() -> None:
    at = utc(2025, 11, 27, 3)

    assert ALWAYS.is_open(at)
    assert ALWAYS.segment(at) == Segment(True, None, None)
    assert ALWAYS.next_open(at) is None
    assert ALWAYS.next_close(at) is None
    assert ALWAYS.opened_at(at) is None
    # A crypto source's clocks count from its newest data, whatever the hour.
    assert ALWAYS.counting_from(at, utc(2025, 11, 26, 23)) == utc(2025, 11, 26, 23)


def test_an_instant_must_carry_its_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ALWAYS.is_open(datetime(2025, 1, 1))


# --- weekly windows ----------------------------------------------------------------------


def test_it_reads_windows_as_people_write_them() -> None:
    assert window_parse("sun 02:00-04:00") == Window(frozenset({6}), time(2), time(4))
    assert window_parse("mon-fri 09:30-16:00").days == frozenset(range(5))
    assert window_parse("daily 22:00-06:00").days == frozenset()
    assert window_parse("sat,sun 00:00-24:00").end is None
    assert window_parse("fri-mon 10:00-11:00").days == frozenset({4, 5, 6, 0})
    assert days_text(days_parse("mon,tue,wed,thu,fri")) == "mon-fri"
    assert window_parse("Mon-Fri 9:30-16:00").text() == "mon-fri 09:30-16:00"
    for bad, why in (
        ("funday 01:00-02:00", "is not a day"),
        ("sun 25:00-26:00", "is not a time of day"),
        ("sun 02:00", "write a window as DAYS HH:MM-HH:MM"),
        ("sun 24:00-02:00", "24:00 is only an end"),
    ):
        with pytest.raises(ValueError, match=why):
            window_parse(bad)


def test_a_maintenance_window_on_sundays_opens_and_closes_in_utc() -> None:
    maintenance = Weekly([window_parse("sun 02:00-04:00")], "UTC")
    sunday = utc(2025, 11, 30, 3)

    assert maintenance.segment(sunday) == Segment(True, utc(2025, 11, 30, 2), utc(2025, 11, 30, 4))
    assert not maintenance.is_open(utc(2025, 11, 30, 4))  # the end is not inside
    assert maintenance.is_open(utc(2025, 11, 30, 2))  # the start is
    assert maintenance.next_open(sunday) == utc(2025, 12, 7, 2)
    assert maintenance.next_close(utc(2025, 12, 1)) == utc(2025, 12, 7, 4)
    assert maintenance.last_close(utc(2025, 12, 3)) == utc(2025, 11, 30, 4)
    assert maintenance.describe() == "sun 02:00-04:00 UTC"


def test_windows_keep_to_the_wall_clock_across_a_daylight_saving_change() -> None:
    # New York moved from EST (UTC-5) to EDT (UTC-4) on Sunday 2025-03-09.
    session = Weekly([window_parse("mon-fri 09:30-16:00")], "America/New_York")

    friday_before = session.segment(utc(2025, 3, 7, 15))
    monday_after = session.segment(utc(2025, 3, 10, 15))

    assert (friday_before.since, friday_before.until) == (
        utc(2025, 3, 7, 14, 30),
        utc(2025, 3, 7, 21),
    )
    assert (monday_after.since, monday_after.until) == (
        utc(2025, 3, 10, 13, 30),
        utc(2025, 3, 10, 20),
    )
    # Over the weekend it is closed from Friday's close to Monday's open, an hour shorter.
    weekend = session.segment(utc(2025, 3, 9, 12))
    assert (weekend.since, weekend.until) == (utc(2025, 3, 7, 21), utc(2025, 3, 10, 13, 30))
    # Back in November (EDT to EST, 2025-11-02) the open moves the other way.
    assert session.next_open(utc(2025, 11, 1)) == utc(2025, 11, 3, 14, 30)


def test_a_window_across_the_night_of_a_daylight_saving_change_lasts_its_wall_hours() -> None:
    # London clocks went back from BST to GMT at 02:00 on Sunday 2025-10-26: the night
    # 22:00-06:00 from Saturday is nine hours long, the one before eight.
    night = Weekly([window_parse("daily 22:00-06:00")], "Europe/London")

    saturday = night.segment(datetime(2025, 10, 25, 23, tzinfo=LONDON))
    friday = night.segment(datetime(2025, 10, 24, 23, tzinfo=LONDON))

    assert saturday.until is not None
    assert saturday.since is not None
    assert friday.until is not None
    assert friday.since is not None
    assert saturday.until - saturday.since == timedelta(hours=9)
    assert friday.until - friday.since == timedelta(hours=8)


def test_windows_that_touch_are_one_stretch() -> None:
    weekend = Weekly([window_parse("sat 00:00-24:00"), window_parse("sun 00:00-24:00")], "UTC")

    assert weekend.segment(utc(2025, 11, 29, 12)) == Segment(
        True, utc(2025, 11, 29), utc(2025, 12, 1)
    )


def test_a_window_every_day_all_day_is_open_for_ever() -> None:
    every = Weekly([window_parse("daily 00:00-24:00")], "UTC")

    assert every.segment(utc(2025, 6, 1)) == Segment(True, None, None)


def test_an_inverted_schedule_is_open_outside_its_windows() -> None:
    rests = Inverted(Weekly([window_parse("sun 02:00-04:00")], "UTC"))

    assert rests.is_open(utc(2025, 11, 30, 1))
    assert not rests.is_open(utc(2025, 11, 30, 3))
    assert rests.next_open(utc(2025, 11, 30, 3)) == utc(2025, 11, 30, 4)
    assert rests.describe() == "outside sun 02:00-04:00 UTC"


def test_a_clock_of_silence_counts_from_the_opening_not_from_the_night_before() -> None:
    session = Weekly([window_parse("mon-fri 09:30-16:00")], "America/New_York")
    last_heartbeat_yesterday = ny(2025, 11, 25, 16, 0)

    at = ny(2025, 11, 26, 9, 40)
    assert session.counting_from(at, last_heartbeat_yesterday) == ny(2025, 11, 26, 9, 30)
    assert session.counting_from(at, ny(2025, 11, 26, 9, 35)) == ny(2025, 11, 26, 9, 35)
    # Never reported: nothing to count.
    assert session.counting_from(at, None) is None


def test_sessions_given_as_spans_answer_with_a_search() -> None:
    spans = [
        (utc(2025, 1, 2, 14, 30), utc(2025, 1, 2, 21)),
        (utc(2025, 1, 3, 14, 30), utc(2025, 1, 3, 21)),
    ]
    sessions = Sessions(spans, name="test sessions")

    assert sessions.segment(utc(2025, 1, 3)) == Segment(
        False, utc(2025, 1, 2, 21), utc(2025, 1, 3, 14, 30)
    )
    assert sessions.segment(utc(2025, 1, 3, 15)).open
    # Past the last known session: closed, with no known next opening.
    assert sessions.segment(utc(2025, 1, 4)) == Segment(False, utc(2025, 1, 3, 21), None)
    assert sessions.sessions_between(utc(2025, 1, 2, 20), utc(2025, 1, 3, 15)) == [
        (utc(2025, 1, 2, 20), utc(2025, 1, 2, 21)),
        (utc(2025, 1, 3, 14, 30), utc(2025, 1, 3, 15)),
    ]


# --- real exchange calendars (the exchange-calendars package) -----------------------------


def test_nyse_is_closed_on_thanksgiving_and_closes_early_the_day_after() -> None:
    nyse = exchange_sessions(code="XNYS", at=utc(2025, 11, 27))

    thanksgiving = nyse.segment(ny(2025, 11, 27, 12))
    assert not thanksgiving.open
    assert thanksgiving.since == ny(2025, 11, 26, 16)  # Wednesday's ordinary close
    assert thanksgiving.until == ny(2025, 11, 28, 9, 30)

    black_friday = nyse.segment(ny(2025, 11, 28, 10))
    assert black_friday.open
    assert black_friday.until == ny(2025, 11, 28, 13)  # the early close, 13:00 ET
    assert not nyse.is_open(ny(2025, 11, 28, 13, 30))
    assert nyse.next_open(ny(2025, 11, 28, 13, 30)) == ny(2025, 12, 1, 9, 30)
    assert nyse.describe() == "XNYS sessions"


def test_nyse_sessions_follow_new_york_time_across_daylight_saving() -> None:
    nyse = exchange_sessions(code="XNYS", at=utc(2025, 3, 7))

    assert nyse.next_open(utc(2025, 3, 7, 22)) == utc(2025, 3, 10, 13, 30)  # EDT
    assert nyse.opened_at(utc(2025, 3, 7, 15)) == utc(2025, 3, 7, 14, 30)  # EST


def test_tokyo_closes_for_lunch() -> None:
    tokyo = exchange_sessions(code="XTKS", at=utc(2025, 11, 27))

    lunch = tokyo.segment(utc(2025, 11, 27, 3))  # 12:00 in Tokyo
    assert not lunch.open
    assert (lunch.since, lunch.until) == (utc(2025, 11, 27, 2, 30), utc(2025, 11, 27, 3, 30))
    assert tokyo.opened_at(utc(2025, 11, 27, 4)) == utc(2025, 11, 27, 3, 30)


def test_exchange_codes_and_aliases_are_known_and_a_typo_is_named() -> None:
    assert exchange_code("nyse") == "XNYS"
    assert exchange_code("XLON") == "XLON"
    assert exchange_code("CMES") == "CMES"
    with pytest.raises(UnknownExchange, match="'XNYZ' is not an exchange calendar"):
        exchange_code("XNYZ")


def test_sessions_are_read_once_per_process_and_widened_near_their_edge() -> None:
    first = exchange_sessions(code="XETR", at=utc(2025, 11, 27))
    assert exchange_sessions(code="XETR", at=utc(2025, 12, 5)) is first

    # Five years later: read again, wider (what was read before stays covered).
    later = exchange_sessions(code="XETR", at=utc(2030, 6, 3, 12))
    assert later.covered is not None
    assert first.covered is not None
    assert later.covered[0] <= first.covered[0]
    assert later.is_open(utc(2030, 6, 3, 12))  # a Monday, 14:00 in Frankfurt
    # The timetable kept by a schedule follows when asked about a far instant.
    assert first.is_open(utc(2030, 6, 3, 12))
