"""`tradewatch backtest RULE --source S --since 7d`: how a rule would have fired on history.

Runs the backtest in this process (no worker needed: the command waits anyway), with
the same replay as the admin's "Try on history" and `POST /api/v1/rules/<id>/backtest`:
the alerts it would have opened and the notifications the enabled policies would have
sent, for the saved thresholds and, with `--threshold`, for an edit beside them.
Nothing is written. Exit code 0 when it ran, 1 when it was refused (the message says why).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from django.core.management.base import CommandParser, OutputWrapper
from django.utils import timezone

from alerts import selectors
from alerts.backtest import BacktestRefused, BacktestRequest, Tier, backtest_run
from core.cli_text import add_color_arguments, duration, render_table, timestamp, use_color

from .style import paint_severity, severity_argument

SUMMARY: Final = "how a rule would have fired on history (writes nothing)"
EPILOG: Final = (
    "e.g. tradewatch backtest 'Drawdown' --source alpha-bot --since 7d "
    "--threshold 'warning > 12 clear 10' --threshold 'critical > 20'. Without --source: "
    "the enabled sources the rule applies to. --threshold (repeatable) tries an edit "
    "beside the saved thresholds"
)
_TIER: Final = re.compile(
    r"\s*(\w+)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*(?:(?:clear|,)\s*([-+0-9.eE]+))?\s*"
)


def tier(text: str) -> Tier:
    """`warning > 12 clear 10`: a severity, a comparison, a value, maybe a clear value."""
    match = _TIER.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a threshold: write e.g. 'warning > 12' or 'warning > 12 clear 10'"
        )
    try:
        value = float(match[3])
        clear = None if match[4] is None else float(match[4])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not a number") from None
    return Tier(int(severity_argument(match[1])), match[2], value, clear)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("rule", help="the rule's id or name")
    parser.add_argument(
        "--source", action="append", default=[], dest="sources", metavar="S",
        help="a source's id or name (repeatable; default: those the rule applies to)",
    )  # fmt: skip
    parser.add_argument(
        "--since", type=duration, default=None, metavar="DURATION",
        help="how far back, e.g. 90m, 12h, 7d (default 1d)",
    )  # fmt: skip
    parser.add_argument("--from", dest="start", type=timestamp, default=None, metavar="TIME")
    parser.add_argument("--until", dest="end", type=timestamp, default=None, metavar="TIME")
    parser.add_argument(
        "--threshold", action="append", type=tier, default=[], dest="thresholds",
        metavar="'SEVERITY OP VALUE [clear V]'", help="an edit to try (repeatable)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_color_arguments(parser)


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    rules, _ = selectors.rules_find([options["rule"]])
    if not rules:
        err.write(f"No rule with id or name {options['rule']!r}.")
        return 1
    sources, missing = selectors.sources_find(options["sources"])
    if missing:
        err.write(f"No source {', '.join(map(repr, missing))}.")
        return 1
    end: datetime = options["end"] or timezone.now().replace(microsecond=0)
    start = options["start"] or end - (options["since"] or duration("1d"))
    asked = BacktestRequest(
        rule_id=rules[0].pk, start=start, end=end,
        source_ids=tuple(s.pk for s in sources) if sources else None,
        thresholds=tuple(options["thresholds"]) or None,
    )  # fmt: skip
    showing = sys.stderr.isatty() and not options["json"]

    def progress(fraction: float) -> None:
        if showing:
            err.write(f"\rreplaying… {fraction * 100:3.0f} %", ending="")

    try:
        answer = backtest_run(asked, progress=progress)
    except BacktestRefused as exc:
        err.write(f"{exc.field}: {exc.message}")
        return 1
    if showing:
        err.write("\r" + " " * 20 + "\r", ending="")
    if options["json"]:
        out.write(json.dumps(answer, indent=2))
        return 0
    for line in format_answer(answer, color=use_color(options["color"], out)):
        out.write(line)
    return 0


def format_answer(answer: dict[str, Any], *, color: bool) -> list[str]:
    """The answer for a terminal: per run, its thresholds, alerts and notifications."""
    sources = ", ".join(source["name"] for source in answer["sources"])
    lines = [
        f"{answer['rule']['name']} on {sources}, {answer['from']} to {answer['to']}: "
        f"{answer['cadence']['instants']} instants, {answer['samples']} samples, "
        f"{answer['seconds']} s."
    ]
    for note in answer["notes"]:
        lines.append(f"Note: {note}")
    for run in answer["runs"]:
        summary = run["summary"]
        thresholds = "; ".join(_threshold(t) for t in run["thresholds"])
        lines += [
            "",
            f"{run['label'].capitalize()} thresholds ({thresholds}): {summary['alerts']} "
            f"alert(s), {summary['fired']} fired, {summary['notifications']} notification(s).",
        ]
        if run["alerts"]:
            lines += _alerts_table(run["alerts"], color)
        for policy in run["notifications"]["by_policy"]:
            events = ", ".join(f"{event} {count}" for event, count in policy["events"].items())
            lines.append(f"  policy {policy['policy']} ({', '.join(policy['channels'])}): {events}")
    return lines


def _threshold(t: dict[str, Any]) -> str:
    clear = "" if t["clear_value"] is None else f" clear {t['clear_value']:g}"
    return f"{t['severity']} {t['comparison']} {t['value']:g}{clear}"


def _alerts_table(alerts: Sequence[dict[str, Any]], color: bool) -> list[str]:
    severities = {name: value for name, value in selectors.SEVERITY_LABELS.items()}
    rows = [
        [
            alert["peak_severity"].upper() + ("" if alert["fired_at"] else " (pending)"),
            alert["source"],
            alert["start"],
            alert["end"] or "open at the end",
            "-" if alert["peak_value"] is None else f"{alert['peak_value']:.6g}",
            str(alert["notifications"]),
        ]
        for alert in alerts
    ]

    def painter(row: int, column: int, text: str) -> str:
        if row < 0 or column:
            return text
        return paint_severity(text, severities.get(alerts[row]["peak_severity"], 0), color)

    table = render_table(("PEAK", "SOURCE", "START", "END", "PEAK VALUE", "SENT"), rows, painter)
    return ["  " + line for line in table]
