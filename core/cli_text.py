"""Text for terminals, and argument types, shared by the command-line verbs.

Pure: plain values in, strings out (no database), so every verb formats times,
values, tables and colours the same way, and argument errors read the same. The
argument types raise `argparse.ArgumentTypeError`, which argparse reports as
`argument --since: <message>` (a `CommandError` when called through `call_command`).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol

from core.query_params import ParamError, parse_labels, parse_step, parse_time

ColorMode = Literal["auto", "always", "never"]

RESET: Final = "\033[0m"


# --- argument types -----------------------------------------------------------------------


def duration(text: str) -> timedelta:
    """A length of time: whole seconds (`90`) or a number with s, m, h, d or w (`10m`)."""
    try:
        return parse_step(text)
    except ParamError as error:
        raise argparse.ArgumentTypeError(error.message.replace("(e.g. 5m)", "(e.g. 10m)")) from None


def timestamp(text: str) -> datetime:
    """An instant: ISO 8601 with an offset (`2026-01-31T12:00:00Z`) or UNIX seconds."""
    try:
        return parse_time(text, "time")
    except ParamError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def labels(text: str) -> dict[str, str]:
    """Labels as `k=v,k2=v2` or a JSON object; empty means the series without labels."""
    try:
        return parse_labels(text)
    except ParamError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def seconds(text: str) -> timedelta:
    """A length of time in seconds, fractions allowed (`90`, `0.5`), not negative."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds of 0 or more")
    try:
        return timedelta(seconds=value)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} seconds is longer than can be kept") from None


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds in [low, high] (for polling intervals)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g} seconds")
        return value

    return parse


def add_color_arguments(parser: argparse.ArgumentParser) -> None:
    """`--color` / `--no-color` on a verb (`auto`: colour when the output is a terminal)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--color", dest="color", action="store_const", const="always", default="auto",
        help="colour the output even when it is not a terminal",
    )  # fmt: skip
    group.add_argument(
        "--no-color", dest="color", action="store_const", const="never",
        help="never colour the output (NO_COLOR in the environment does the same)",
    )  # fmt: skip


# --- colours ------------------------------------------------------------------------------


class Terminal(Protocol):
    def isatty(self) -> bool: ...


def use_color(mode: ColorMode, stream: Terminal, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour: always, never, or (auto) on a terminal unless NO_COLOR is set."""
    if mode != "auto":
        return mode == "always"
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return stream.isatty()


def paint(text: str, code: str | None, enabled: bool) -> str:
    """`text` in the ANSI style `code` (e.g. "1;31") when colour is on."""
    if not enabled or not code:
        return text
    return f"\033[{code}m{text}{RESET}"


# --- values -------------------------------------------------------------------------------


def format_time(moment: datetime | None) -> str:
    """`2026-01-31 12:00:03Z` (UTC, to the second), or `-`."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_value(value: float | None) -> str:
    """A measurement, short: six significant digits, `-` when there is none."""
    if value is None:
        return "-"
    return f"{value:.6g}"


def format_age(age: timedelta) -> str:
    """How long ago, in at most two units: `45s`, `12m`, `3h05m`, `2d04h`."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_duration(length: timedelta) -> str:
    """A length as typed on the command line: `90s` stays `90s`, `3600s` reads `1h`,
    a fraction of a second is kept (`1.5s`)."""
    if length % timedelta(seconds=1):
        return f"{length.total_seconds():g}s"
    seconds = int(length.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


NO_LABELS: Final = "(no labels)"


def format_labels(labels: Mapping[str, str]) -> str:
    """`{symbol="BTC/USDT", venue="binance"}` (sorted), or `(no labels)` for a series
    without (an empty `{}` reads like a value that failed to print)."""
    if not labels:
        return NO_LABELS
    inner = ", ".join(f'{key}="{labels[key]}"' for key in sorted(labels))
    return "{" + inner + "}"


# --- tables -------------------------------------------------------------------------------

Painter = Callable[[int, int, str], str]


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], painter: Painter | None = None
) -> list[str]:
    """Columns aligned to their widest cell, two spaces apart, no trailing spaces.

    `painter(row, column, padded_text)` may colour a cell after padding, so escape
    codes never upset the alignment (row -1 is the header).
    """
    widths = [len(header) for header in headers]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))
    last = len(headers) - 1

    def line(index: int, cells: Sequence[str]) -> str:
        parts = []
        for column, cell in enumerate(cells):
            padded = cell if column == last else cell.ljust(widths[column])
            parts.append(painter(index, column, padded) if painter else padded)
        return "  ".join(parts).rstrip()

    return [line(-1, headers), *(line(index, row) for index, row in enumerate(rows))]
