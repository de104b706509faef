"""`tradewatch export`: the alerts first seen in a time range, as JSONL or CSV.

Rows are streamed from a server-side cursor and written as they come, so exporting a
million alerts holds one chunk in memory, not a million model instances. A file is
written beside its final name and moved into place at the end: an interrupted export
never leaves a half file that looks complete.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from alerts.models import Alert
from core.cli_text import timestamp
from metrics.cli.streams import reader_left

from .style import severity_name

FIELDS: Final = (
    "id", "fingerprint", "rule", "source", "labels", "severity", "state", "value",
    "peak_value", "threshold_value", "message", "count", "first_seen", "fired_at",
    "last_seen", "resolved_at", "resolution", "acknowledged_by", "acknowledged_at",
)  # fmt: skip
# The columns behind FIELDS, up to `acknowledged_by` (whose column depends on the user model).
COLUMNS: Final = (
    "id", "fingerprint", "rule__name", "source__name", "labels", "severity", "state", "value",
    "peak_value", "threshold_value", "message", "count", "first_seen", "fired_at",
    "last_seen", "resolved_at", "resolution",
)  # fmt: skip
CHUNK: Final = 2000
SUMMARY: Final = "alerts first seen in a time range, as JSONL or CSV"
EPILOG: Final = (
    f"Fields: {', '.join(FIELDS)}. Times are ISO 8601 UTC; labels a JSON object (in CSV "
    "its compact JSON); rule, source and acknowledged_by are names; an empty value is "
    "null in JSONL and an empty cell in CSV. The range is [--from, --to)."
)
FORMATS: Final = ("jsonl", "csv")

Record = dict[str, Any]


# --- pure ---------------------------------------------------------------------------------


def record(row: tuple[Any, ...]) -> Record:
    """One alert as exported: `FIELDS` in order; names for rule, source, severity, person."""
    exported = dict(zip(FIELDS, row, strict=True))
    exported["severity"] = severity_name(exported["severity"]).lower()
    return exported


def jsonl_line(exported: Record) -> str:
    """The alert as one JSON line (times ISO 8601 with offset, labels an object)."""
    return orjson.dumps(exported).decode() + "\n"


def csv_cell(value: Any) -> str:
    """A CSV cell: empty for none, ISO 8601 for times, compact sorted JSON for labels."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)  # floats as repr: they read back exactly


def write_jsonl(records: Iterable[Record], out: IO[str] | OutputWrapper) -> int:
    written = 0
    for exported in records:
        out.write(jsonl_line(exported))
        written += 1
    return written


def write_csv(records: Iterable[Record], out: IO[str] | OutputWrapper) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    written = 0
    for exported in records:
        writer.writerow([csv_cell(exported[name]) for name in FIELDS])
        written += 1
    return written


WRITERS: Final = {"jsonl": write_jsonl, "csv": write_csv}


# --- database -----------------------------------------------------------------------------


def alert_records(*, start: datetime, end: datetime, chunk_size: int = CHUNK) -> Iterator[Record]:
    """Alerts with `start <= first_seen < end`, oldest first, streamed."""
    columns = [*COLUMNS, f"acknowledged_by__{get_user_model().USERNAME_FIELD}", "acknowledged_at"]
    rows = (
        Alert.objects.filter(first_seen__gte=start, first_seen__lt=end)
        .order_by("first_seen", "id")
        .values_list(*columns)
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        yield record(row)


# --- the verb -----------------------------------------------------------------------------


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--from", dest="start", type=timestamp, required=True, metavar="TIME",
        help="first_seen at or after: ISO 8601 with offset (2026-01-31T00:00:00Z) or UNIX "
        "seconds",
    )  # fmt: skip
    parser.add_argument(
        "--to", dest="end", type=timestamp, default=None, metavar="TIME",
        help="first_seen before this (default: now)",
    )  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="default jsonl")
    parser.add_argument(
        "--output", default="-", metavar="FILE", help="a file, or - for stdout (default)"
    )


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    start: datetime = options["start"]
    end: datetime = options["end"] or timezone.now()
    if end <= start:
        raise CommandError(f"--to: must be after --from ({start.isoformat()}).")
    write = WRITERS[options["format"]]
    records = alert_records(start=start, end=end)
    target: str = options["output"]
    if target == "-":
        try:
            write(records, out)
            out.flush()
        except BrokenPipeError:
            reader_left()
        return 0
    path = Path(target)
    if path.is_dir():
        raise CommandError(f"--output: {target} is a directory.")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as file:
            written = write(records, file)
        os.replace(partial, path)
    except OSError as error:
        raise CommandError(f"--output: cannot write {target}: {error.strerror}.") from None
    finally:
        partial.unlink(missing_ok=True)
    err.write(f"Exported {written} alert(s) to {target}.")
    return 0
