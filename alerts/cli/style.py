"""Severities on the command line: reading them from arguments, showing them in colour."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Final

from alerts.models import Severity
from core.cli_text import paint

# One colour per severity, so a wall of lines can be read from across the room.
SEVERITY_COLORS: Final[Mapping[int, str]] = {
    Severity.DEBUG: "2",  # dim
    Severity.INFO: "36",  # cyan
    Severity.WARNING: "33",  # yellow
    Severity.ERROR: "31",  # red
    Severity.CRITICAL: "1;31",  # bold red
    Severity.EMERGENCY: "1;97;41",  # bold white on red
}
RESOLVED_COLOR: Final = "32"  # green: good news reads differently from bad
SEVERITY_WIDTH: Final = max(len(severity.name) for severity in Severity)


def severity_name(severity: int) -> str:
    """`CRITICAL`; a number no level has (a removed one) is shown as the number."""
    try:
        return Severity(severity).name
    except ValueError:
        return str(severity)


def severity_argument(text: str) -> Severity:
    """A severity by name (`warning`, any case) or number (`30`)."""
    value = text.strip()
    try:
        return Severity(int(value)) if value.isdigit() else Severity[value.upper()]
    except (KeyError, ValueError):
        names = ", ".join(severity.name.lower() for severity in Severity)
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a severity; use one of {names}"
        ) from None


def paint_severity(text: str, severity: int, enabled: bool) -> str:
    """`text` in the colour of `severity`."""
    return paint(text, SEVERITY_COLORS.get(severity), enabled)
