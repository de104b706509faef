"""`tradewatch tail`: follow alerts as they happen, one line per timeline entry.

Every change of an alert is an `AlertTransition` row, so following alerts is polling
that table by increasing id. Ids are handed out when a row is inserted but become
visible when its transaction commits, so a slow transaction can commit id 7 after
id 8 was printed: the `Cursor` keeps looking for such gaps for a short while, in a
bounded set, so a tail running for days uses the same memory as one started now.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import Max, QuerySet
from django.utils import timezone

from alerts.models import AlertTransition, Severity
from core.cli_text import (
    add_color_arguments,
    duration,
    format_time,
    format_value,
    paint,
    seconds_between,
    use_color,
)
from metrics.cli.sources import source_ids
from metrics.cli.streams import reader_left

from .style import RESOLVED_COLOR, SEVERITY_WIDTH, paint_severity, severity_argument, severity_name

SUMMARY: Final = "follow alerts as they happen (Ctrl-C stops)"
EPILOG: Final = (
    "One line per change of an alert (opened, firing, severity raised, repeat, "
    "acknowledged, resolved...): time (UTC), severity, change, source, rule, value, "
    "message, alert id. Coloured on a terminal. Ctrl-C or SIGTERM exits with 0; if the "
    "database restarts, one notice goes to stderr and the tail carries on."
)
BATCH: Final = 500
# How long an id skipped by the sequence may still appear (its transaction committing
# late), and how many such ids to remember at most.
GAP_SECONDS: Final = 30.0
MAX_GAPS: Final = 1000
KIND_WIDTH: Final = max(len(kind.value) for kind in AlertTransition.Kind)


# --- pure ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransitionLine:
    """One timeline entry, in plain values: what a tail line shows."""

    id: int
    alert_id: int
    at: datetime
    severity: int
    kind: str
    source: str
    rule: str
    value: float | None
    message: str
    actor: str = ""
    silenced: bool = False


def format_transition(line: TransitionLine, *, color: bool) -> str:
    """`2026-01-31 12:00:03Z  CRITICAL   firing  alpha-bot  Drawdown  value=12.5  msg  #42`."""
    severity = paint_severity(
        severity_name(line.severity).ljust(SEVERITY_WIDTH), line.severity, color
    )
    kind = line.kind.ljust(KIND_WIDTH)
    if line.kind == AlertTransition.Kind.RESOLVED:
        kind = paint(kind, RESOLVED_COLOR, color)
    parts = [
        format_time(line.at),
        severity,
        kind,
        line.source,
        line.rule,
        f"value={format_value(line.value)}",
        line.message,
    ]
    if line.actor:
        parts.append(f"by {line.actor}")
    if line.silenced:
        parts.append("(silenced)")
    parts.append(f"#{line.alert_id}")
    return "  ".join(part for part in parts if part)


class Cursor:
    """How far the tail has read: the highest id seen, and recent gaps below it."""

    def __init__(
        self, last_id: int, *, gap_seconds: float = GAP_SECONDS, max_gaps: int = MAX_GAPS
    ) -> None:
        self.last_id = last_id
        self.gap_seconds = gap_seconds
        self.max_gaps = max_gaps
        # id -> until when (monotonic seconds) it is worth looking for.
        self.gaps: dict[int, float] = {}

    def waiting(self, now: float) -> list[int]:
        """The skipped ids still worth asking for (forgetting those past their time)."""
        self.gaps = {gap: until for gap, until in self.gaps.items() if until > now}
        return sorted(self.gaps)

    def advance(self, found: Sequence[int], now: float) -> None:
        """Record the ids a poll found (sorted): move on, and note the ids skipped."""
        for gap in found:
            self.gaps.pop(gap, None)
        new = [each for each in found if each > self.last_id]
        if not new:
            return
        top = new[-1]
        # A jump of millions (a rolled-back bulk insert) is not worth remembering whole.
        low = max(self.last_id + 1, top - len(new) - self.max_gaps)
        present = set(new)
        until = now + self.gap_seconds
        for missing in range(low, top):
            if missing not in present:
                self.gaps[missing] = until
        if len(self.gaps) > self.max_gaps:
            for oldest in sorted(self.gaps)[: len(self.gaps) - self.max_gaps]:
                del self.gaps[oldest]
        self.last_id = top


def follow(
    poll: Callable[[], tuple[Sequence[TransitionLine], bool]],
    *,
    show: Callable[[TransitionLine], None],
    notice: Callable[[str], None],
    reset: Callable[[], None],
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Poll and show, until interrupted; ride out a database restart with one notice.

    While the database is away it is tried again at the polling interval, but not more
    than once a second (a restarting server need not be hammered with connections).

    `poll()` returns the new lines and whether more are waiting (then it polls again
    at once: a storm is printed as fast as the terminal takes it).
    """
    lost = False
    reconnect_seconds = max(interval, 1.0)
    while keep_going():
        try:
            lines, more = poll()
        except (OperationalError, InterfaceError) as error:
            if not lost:
                first = (str(error).strip().splitlines() or ["no answer"])[0]
                notice(f"Lost the database ({first}); reconnecting every {reconnect_seconds:g}s.")
                lost = True
            reset()
            sleep(reconnect_seconds)
            continue
        if lost:
            notice("Reconnected to the database.")
            lost = False
        for line in lines:
            show(line)
        if not more:
            sleep(interval)


# --- database -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    source_ids: list[int]
    severity_min: int | None

    def apply(self, transitions: QuerySet[AlertTransition]) -> QuerySet[AlertTransition]:
        if self.source_ids:
            transitions = transitions.filter(alert__source_id__in=self.source_ids)
        if self.severity_min is not None:
            transitions = transitions.filter(severity__gte=self.severity_min)
        return transitions


def _lines(
    transitions: QuerySet[AlertTransition], *, stream: bool = False
) -> Iterator[TransitionLine]:
    query = transitions.order_by("id").values_list(
        "id", "alert_id", "at", "severity", "kind", "alert__source__name", "alert__rule__name",
        "value", "alert__message", f"actor__{get_user_model().USERNAME_FIELD}", "silenced",
    )  # fmt: skip
    rows = query.iterator(chunk_size=BATCH) if stream else query
    for id_, alert_id, at, severity, kind, source, rule, value, message, actor, silenced in rows:
        yield TransitionLine(
            id=id_, alert_id=alert_id, at=at, severity=severity, kind=kind, source=source,
            rule=rule, value=value, message=message, actor=actor or "", silenced=silenced,
        )  # fmt: skip


def newest_id() -> int:
    return AlertTransition.objects.aggregate(top=Max("id"))["top"] or 0


def backlog(filters: Filters, *, since: datetime, up_to: int) -> Iterator[TransitionLine]:
    """Entries from `since` up to id `up_to`, streamed (an hour of a storm is many rows)."""
    transitions = filters.apply(AlertTransition.objects.filter(at__gte=since, id__lte=up_to))
    yield from _lines(transitions, stream=True)


def poll(cursor: Cursor, filters: Filters, now: float) -> tuple[list[TransitionLine], bool]:
    """Entries committed since the last poll (and late ones filling recent gaps), and
    whether more are waiting."""
    gaps = cursor.waiting(now)
    ids = list(
        AlertTransition.objects.filter(id__gt=cursor.last_id)
        .order_by("id")
        .values_list("id", flat=True)[:BATCH]
    )
    more = len(ids) == BATCH
    if gaps:
        ids = sorted(
            {*ids, *AlertTransition.objects.filter(id__in=gaps).values_list("id", flat=True)}
        )
    lines = list(_lines(filters.apply(AlertTransition.objects.filter(id__in=ids)))) if ids else []
    # Only once the lines are read: a connection lost in between loses no entry.
    cursor.advance(ids, now)
    return lines, more


def _reset_connection() -> None:
    # The connection is gone already; the next query opens a new one.
    with contextlib.suppress(DatabaseError):
        connection.close()


# --- the verb -----------------------------------------------------------------------------


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--source", action="append", default=[], dest="sources", metavar="SOURCE",
        help="only this source's alerts (name or id; repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--severity-min", type=severity_argument, default=None, metavar="SEVERITY",
        help="only entries at this severity or above: debug, info, warning, error, "
        "critical, emergency",
    )  # fmt: skip
    parser.add_argument(
        "--since", type=duration, default=None, metavar="DURATION",
        help="first show the entries of this recent past, e.g. 10m (default: only new ones)",
    )  # fmt: skip
    parser.add_argument(
        "--interval", type=seconds_between(0.05, 3600), default=1.0, metavar="SECONDS",
        help="seconds between polls of the database (default 1)",
    )  # fmt: skip
    add_color_arguments(parser)


class _Stop(BaseException):
    """SIGTERM: stop as Ctrl-C does. A BaseException, as KeyboardInterrupt is: code that
    catches Exception (the client library's flush does) must not swallow it."""


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    severity: Severity | None = options["severity_min"]
    filters = Filters(source_ids=source_ids(options["sources"]), severity_min=severity)
    color = use_color(options["color"], out)

    def show(line: TransitionLine) -> None:
        out.write(format_transition(line, color=color))
        out.flush()

    def notice(text: str) -> None:
        err.write(text)
        err.flush()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_terminate)
    try:
        start = newest_id()
        since: timedelta | None = options["since"]
        if since is not None:
            for line in backlog(filters, since=timezone.now() - since, up_to=start):
                show(line)
        cursor = Cursor(start)
        # On stderr, so a pipe (`tail | grep`) sees only alert lines.
        notice("Following alerts; Ctrl-C stops.")
        follow(
            lambda: poll(cursor, filters, time.monotonic()),
            show=show,
            notice=notice,
            reset=_reset_connection,
            interval=options["interval"],
        )
    except (KeyboardInterrupt, _Stop):
        pass  # Ctrl-C or SIGTERM: the user is done watching, which is success
    except BrokenPipeError:
        reader_left()
    except (OperationalError, InterfaceError) as error:
        raise CommandError(f"Cannot read alerts from the database: {error}".strip()) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
