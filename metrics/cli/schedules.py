"""`tradewatch schedule list|show|add|exchanges`: schedules on the command line.

`list` shows each schedule, whether it is open and its next open and close; `show NAME`
the same for one, with its spans over the coming days; `add` creates one (exchange
sessions or weekly windows); `exchanges` lists the exchange calendars known.
Attaching a schedule to a rule, a source or a silence is configuration (`config
apply`, the admin, the API) or `source add --schedule`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from core.cli_text import format_time, render_table, timestamp
from metrics.calendars import exchange_codes
from metrics.models import Schedule
from metrics.schedules import schedule_create, schedule_state, timetable_of, when_text

SUMMARY: Final = "schedules: when they open and close (list, show, add, exchanges)"
EPILOG: Final = (
    "examples: `tradewatch schedule add nyse --exchange XNYS`; `tradewatch schedule add "
    "maintenance --window 'sun 02:00-04:00' --timezone UTC`; `tradewatch schedule show "
    "nyse --at 2025-11-27T15:00:00Z`"
)
HEADERS: Final = ("NAME", "KIND", "WHEN", "NOW", "NEXT OPEN", "NEXT CLOSE")


def add_arguments(parser: CommandParser) -> None:
    actions = parser.add_subparsers(dest="schedule_action", required=True)
    listing = actions.add_parser("list", help="every schedule, open or closed, next open/close")
    listing.add_argument("--at", type=timestamp, default=None, help="instead of now (ISO 8601)")
    show = actions.add_parser("show", help="one schedule and its spans over the coming days")
    show.add_argument("name")
    show.add_argument("--at", type=timestamp, default=None, help="instead of now (ISO 8601)")
    show.add_argument("--days", type=int, default=7, help="days of spans to show (default 7)")
    add = actions.add_parser("add", help="create a schedule")
    add.add_argument("name")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--exchange", help="an exchange calendar's code: XNYS, XLON, CMES...")
    what.add_argument(
        "--window", action="append", dest="windows", metavar="'DAYS HH:MM-HH:MM'",
        help="a weekly window, e.g. 'mon-fri 09:30-16:00' (repeatable)",
    )  # fmt: skip
    what.add_argument("--always", action="store_true", help="open at every instant")
    add.add_argument("--timezone", default="UTC", help="the windows' time zone (default UTC)")
    add.add_argument("--invert", action="store_true", help="open outside the sessions/windows")
    add.add_argument("--description", default="")
    actions.add_parser("exchanges", help="the exchange calendars' codes")


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    action = options["schedule_action"]
    if action == "exchanges":
        out.write(" ".join(exchange_codes()))
        return 0
    if action == "add":
        return _add(options, out)
    at = options.get("at") or timezone.now()
    if action == "show":
        return _show(options["name"], at, options["days"], out)
    rows = []
    for schedule in Schedule.objects.all():
        state = schedule_state(timetable_of(schedule, now=at), at)
        rows.append(
            (
                schedule.name,
                schedule.kind,
                state.describe,
                "open" if state.open else "closed",
                when_text(state.next_open, at),
                when_text(state.next_close, at),
            )
        )
    if not rows:
        out.write("No schedule yet (`tradewatch schedule add`).")
        return 0
    for line in render_table(HEADERS, rows):
        out.write(line)
    return 0


def _add(options: dict[str, Any], out: OutputWrapper) -> int:
    if options["exchange"]:
        kind = Schedule.Kind.EXCHANGE
    elif options["windows"]:
        kind = Schedule.Kind.WEEKLY
    else:
        kind = Schedule.Kind.ALWAYS
    try:
        schedule = schedule_create(
            name=options["name"], kind=kind, exchange=options["exchange"] or "",
            zone=options["timezone"], windows=options["windows"] or (),
            invert=options["invert"], description=options["description"],
        )  # fmt: skip
    except ValidationError as exc:
        problems = [
            f"{field}: {message}" if field != "__all__" else message
            for field, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items()
            for message in messages
        ]
        raise CommandError("; ".join(problems)) from None
    now = timezone.now()
    state = schedule_state(timetable_of(schedule, now=now), now)
    out.write(
        f"Created schedule {schedule.name} ({state.describe}): "
        f"{'open' if state.open else 'closed'} now; next open {when_text(state.next_open, now)}, "
        f"next close {when_text(state.next_close, now)}."
    )
    return 0


def _show(name: str, at: datetime, days: int, out: OutputWrapper) -> int:
    schedule = Schedule.objects.filter(name=name).first()
    if schedule is None:
        raise CommandError(f"No schedule named {name!r} (`tradewatch schedule list`).")
    table = timetable_of(schedule, now=at)
    state = schedule_state(table, at)
    out.write(f"{schedule.name}: {state.describe}")
    out.write(f"At {format_time(at)}: {'open' if state.open else 'closed'}")
    out.write(f"Next open:  {when_text(state.next_open, at)}")
    out.write(f"Next close: {when_text(state.next_close, at)}")
    spans = table.sessions_between(at, at + timedelta(days=max(1, days)))
    out.write(f"Open in the next {max(1, days)} days:" if spans else "Closed all that time.")
    for start, end in spans:
        out.write(f"  {format_time(start)} - {format_time(end)}")
    return 0
