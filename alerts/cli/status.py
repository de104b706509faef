"""`tradewatch status`: the open alerts, most severe first, with an exit code for scripts.

The exit code follows the Nagios plugin convention, so Tradewatch itself can be
checked by Nagios, Icinga, Sensu or a cron script without parsing any text:

    0  nothing firing (pending alerts may be listed)
    1  alerts firing, none at CRITICAL or above
    2  an alert firing at CRITICAL or EMERGENCY (acknowledged or not)
    3  the status could not be read (unknown source, database unreachable)

Tradewatch's watchdog is not counted, listed nor part of the exit code: it fires always,
by design, for a dead man's switch outside Tradewatch (which still gets its
notifications); one line says it fires, when it does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import InterfaceError, OperationalError
from django.db.models import Count, QuerySet
from django.utils import timezone

from alerts.models import Alert, Severity
from alerts.selectors import is_watchdog, without_watchdog
from core.cli_text import (
    add_color_arguments,
    format_age,
    format_time,
    format_value,
    render_table,
    use_color,
)
from metrics.cli.sources import source_ids

from .style import SEVERITY_WIDTH, paint_severity, severity_name

OK: Final = 0
FIRING: Final = 1
CRITICAL_FIRING: Final = 2
UNKNOWN: Final = 3

SUMMARY: Final = "open alerts, most severe first (exit code for scripts)"
EPILOG: Final = (
    "exit codes (the Nagios convention): 0 nothing firing (pending alerts may be open); "
    "1 alerts firing, none at CRITICAL or above; 2 an alert firing at CRITICAL or "
    "EMERGENCY; 3 the status could not be read (unknown source, database down). "
    "Tradewatch's watchdog (always firing, for dead man's switches) is not counted"
)
WATCHDOG_LINE: Final = "Watchdog firing (Tradewatch alive; for dead man's switches, not counted)."
OPEN_STATES: Final = (Alert.State.PENDING, Alert.State.FIRING)
HEADERS: Final = ("SEVERITY", "STATE", "SOURCE", "RULE", "VALUE", "SINCE", "ACKNOWLEDGED BY")

# Open alerts per (severity, state).
Counts = Mapping[tuple[int, str], int]


# --- pure ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAlertRow:
    """One open alert, in plain values: a row of the table."""

    id: int
    severity: int
    state: str
    source: str
    rule: str
    value: float | None
    comparison: str
    threshold: float | None
    since: datetime
    acknowledged_by: str | None
    acknowledged: bool
    inhibited: bool


def exit_code(counts: Counts) -> int:
    """0 nothing firing, 1 firing below CRITICAL, 2 firing at CRITICAL or above."""
    firing = [severity for (severity, state), n in counts.items() if state == "firing" and n]
    if not firing:
        return OK
    return CRITICAL_FIRING if max(firing) >= Severity.CRITICAL else FIRING


def _value(row: OpenAlertRow) -> str:
    value = format_value(row.value)
    if row.threshold is None or not row.comparison:
        return value
    return f"{value} {row.comparison} {format_value(row.threshold)}"


def _acknowledged(row: OpenAlertRow) -> str:
    if row.acknowledged_by:
        return row.acknowledged_by
    return "(someone)" if row.acknowledged else "-"


def format_status(
    counts: Counts,
    rows: Sequence[OpenAlertRow],
    *,
    now: datetime,
    color: bool,
    watchdog_firing: bool = False,
) -> list[str]:
    """The summary by severity, then the table of `rows` (and how many were left out)."""
    total = sum(counts.values())
    watchdog = [WATCHDOG_LINE] if watchdog_firing else []
    if not total:
        return ["No open alerts.", *watchdog]
    firing = sum(n for (_, state), n in counts.items() if state == "firing")
    lines = [f"Open alerts: {total} ({firing} firing, {total - firing} pending)"]
    by_severity: dict[int, int] = {}
    for (severity, _), n in counts.items():
        by_severity[severity] = by_severity.get(severity, 0) + n
    for severity in sorted(by_severity, reverse=True):
        name = severity_name(severity).ljust(SEVERITY_WIDTH)
        lines.append(f"  {paint_severity(name, severity, color)}  {by_severity[severity]}")
    lines.append("")
    table = [
        [
            severity_name(row.severity),
            f"{row.state}, inhibited" if row.inhibited else row.state,
            row.source,
            row.rule,
            _value(row),
            f"{format_time(row.since)} ({format_age(now - row.since)})",
            _acknowledged(row),
        ]
        for row in rows
    ]

    def painter(index: int, column: int, text: str) -> str:
        if index < 0 or column != 0:
            return text
        return paint_severity(text, rows[index].severity, color)

    lines.extend(render_table(HEADERS, table, painter))
    if len(rows) < total:
        lines.append(f"... and {total - len(rows)} more (--limit 0 shows them all)")
    return [*lines, *watchdog]


# --- database -----------------------------------------------------------------------------


def _open(source_ids: Sequence[int]) -> QuerySet[Alert]:
    """Open alerts of `source_ids` (all when empty), the watchdog left out."""
    alerts = without_watchdog(Alert.objects.filter(state__in=OPEN_STATES))
    if source_ids:
        alerts = alerts.filter(source_id__in=source_ids)
    return alerts


def watchdog_firing(source_ids: Sequence[int]) -> bool:
    """Whether Tradewatch's watchdog fires (on one of `source_ids`, when given)."""
    alerts = Alert.objects.filter(is_watchdog(), state=Alert.State.FIRING)
    if source_ids:
        alerts = alerts.filter(source_id__in=source_ids)
    return alerts.exists()


def open_counts(source_ids: Sequence[int]) -> dict[tuple[int, str], int]:
    alerts = _open(source_ids)
    return {
        (row["severity"], row["state"]): row["n"]
        for row in alerts.values("severity", "state").annotate(n=Count("id")).order_by()
    }


def open_alerts(source_ids: Sequence[int], *, limit: int | None) -> list[OpenAlertRow]:
    """Open alerts, most severe first, firing before pending, oldest first."""
    alerts = _open(source_ids)
    by = f"acknowledged_by__{get_user_model().USERNAME_FIELD}"
    # "firing" sorts before "pending".
    query = alerts.order_by("-severity", "state", "first_seen", "id").values(
        "id", "severity", "state", "source__name", "rule__name", "value", "comparison",
        "threshold_value", "first_seen", "fired_at", by, "acknowledged_at", "inhibited",
    )  # fmt: skip
    return [
        OpenAlertRow(
            id=row["id"],
            severity=row["severity"],
            state=row["state"],
            source=row["source__name"],
            rule=row["rule__name"],
            value=row["value"],
            comparison=row["comparison"],
            threshold=row["threshold_value"],
            since=row["fired_at"] or row["first_seen"],
            acknowledged_by=row[by],
            acknowledged=row["acknowledged_at"] is not None,
            inhibited=row["inhibited"],
        )
        for row in (query[:limit] if limit else query)
    ]


# --- the verb -----------------------------------------------------------------------------


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--source", action="append", default=[], dest="sources", metavar="SOURCE",
        help="only this source's alerts (name or id; repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=int, default=100, metavar="N",
        help="list at most this many alerts (default 100; 0 for all); the counts are "
        "always complete",
    )  # fmt: skip
    add_color_arguments(parser)


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    if options["limit"] < 0:
        raise CommandError("--limit: must be 0 (no limit) or more.", returncode=UNKNOWN)
    try:
        ids = source_ids(options["sources"], returncode=UNKNOWN)
        counts = open_counts(ids)
        rows = open_alerts(ids, limit=options["limit"] or None)
        watchdog = watchdog_firing(ids)
    except (OperationalError, InterfaceError) as error:
        raise CommandError(
            f"Cannot read alerts from the database: {error}".strip(), returncode=UNKNOWN
        ) from None
    color = use_color(options["color"], out)
    lines = format_status(counts, rows, now=timezone.now(), color=color, watchdog_firing=watchdog)
    for line in lines:
        out.write(line)
    return exit_code(counts)
