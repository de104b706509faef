"""`tradewatch health`: run the health checks now and print what they found.

The exit code follows the Nagios plugin convention, like `tradewatch status`:
0 healthy, 1 degraded, 2 unhealthy or critical, 3 nothing could be read.
"""

from __future__ import annotations

from typing import Any, Final

from django.core.management.base import CommandParser, OutputWrapper
from django.db import InterfaceError, OperationalError

from core.cli_text import render_table
from health import selectors
from health.models import HealthCheck
from health.runner import checks_run
from health.scoring import Status

SUMMARY: Final = "run the health checks now and print the results (exit code for scripts)"
EPILOG: Final = (
    "exit codes (the Nagios convention): 0 healthy; 1 degraded; 2 unhealthy or critical; "
    "3 the status could not be read"
)
EXIT_CODES: Final = {
    Status.UNKNOWN: 0,
    Status.HEALTHY: 0,
    Status.DEGRADED: 1,
    Status.UNHEALTHY: 2,
    Status.CRITICAL: 2,
}


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--check", action="append", default=[], dest="checks", help="only this check (repeatable)"
    )
    parser.add_argument(
        "--no-run", action="store_true", help="print the last results without probing"
    )


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    try:
        checks = HealthCheck.objects.filter(enabled=True)
        if options["checks"]:
            checks = HealthCheck.objects.filter(name__in=options["checks"])
            missing = set(options["checks"]) - set(checks.values_list("name", flat=True))
            if missing:
                err.write(f"No health check named {', '.join(sorted(missing))}.")
                return 3
        if not options["no_run"]:
            checks_run(check_ids=list(checks.values_list("id", flat=True)))
        status = selectors.system_status()
    except (OperationalError, InterfaceError) as exc:
        err.write(f"Cannot read the health status: {exc}")
        return 3
    rows = [
        (
            row["status"],
            row["name"],
            row["kind"],
            _shown(row["score"]),
            "" if row["latency_ms"] is None else f"{row['latency_ms']:.0f} ms",
            "" if row["breaker"] == "closed" else row["breaker"],
            row["summary"],
        )
        for row in status["checks"]
        if not options["checks"] or row["name"] in options["checks"]
    ]
    if rows:
        headers = ("STATUS", "CHECK", "KIND", "SCORE", "LATENCY", "BREAKER", "DETAILS")
        for line in render_table(headers, rows):
            out.write(line)
    sources = [
        (
            row["status"],
            row["name"],
            str(row["score"]),
            # "market closed (...)" says why a quiet source is not judged.
            "; ".join(row["issues"] or row["warnings"] or row.get("notes", [])),
        )
        for row in status["sources"]
    ]
    if sources and not options["checks"]:
        for line in render_table(("STATUS", "SOURCE", "SCORE", "DETAILS"), sources):
            out.write(line)
    own = status.get("tradewatch")
    if own and own["issues"]:
        out.write(f"Tradewatch itself: {own['status']}: {'; '.join(own['issues'])}")
    out.write(f"System: {status['status']}")
    return EXIT_CODES[Status(status["status"].lower())]


def _shown(score: int | None) -> str:
    return "" if score is None else str(score)
