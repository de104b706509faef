"""`tradewatch metrics SOURCE NAME`: a metric's recent history, with a sparkline per series.

The query is the HTTP API's (`metrics.queries.metric_query`); what is here is choosing
a step, and drawing: `sparkline` and `format_history` are pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from core.cli_text import duration, format_duration, format_labels, format_time, format_value
from core.cli_text import labels as labels_argument
from core.query_params import AGGREGATIONS, Aggregation, ParamError, parse_step
from metrics.models import MetricSeries, Source
from metrics.queries import QueryResult, bucket_index, metric_query, source_find

SUMMARY: Final = "a metric's recent history, with a sparkline per series"
EPILOG: Final = (
    "Points are stamped with the start of their bucket (UTC); empty buckets are gaps in "
    "the sparkline. Example: tradewatch metrics alpha-bot drawdown_pct --since 6h --step 5m"
)
BARS: Final = "▁▂▃▄▅▆▇█"
SPARKLINE_WIDTH: Final = 60
# An automatic step cuts the range into at most this many buckets: a screen's width.
TARGET_BUCKETS: Final = 60
NICE_STEPS: Final = tuple(
    timedelta(seconds=seconds)
    for seconds in (
        1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
        86400, 604800,
    )
)  # fmt: skip


# --- pure ---------------------------------------------------------------------------------


def auto_step(span: timedelta, buckets: int = TARGET_BUCKETS) -> timedelta:
    """The smallest round step that cuts `span` into at most `buckets` buckets."""
    for step in NICE_STEPS:
        if span / step <= buckets:
            return step
    return NICE_STEPS[-1]


def bucket_values(
    points: Sequence[tuple[datetime, float]], start: datetime, end: datetime, step: timedelta
) -> list[float | None]:
    """One value per bucket from `start` to `end`, None where a bucket has no point."""
    first = bucket_index(start, step)
    values: list[float | None] = [None] * (bucket_index(end, step) - first + 1)
    for ts, value in points:
        index = bucket_index(ts, step) - first
        if 0 <= index < len(values):
            values[index] = value
    return values


def _squeeze(values: Sequence[float | None], width: int) -> list[float | None]:
    """At most `width` cells, each the mean of the values it covers (None: no values)."""
    if len(values) <= width:
        return list(values)
    cells: list[float | None] = []
    for cell in range(width):
        covered = values[cell * len(values) // width : (cell + 1) * len(values) // width]
        present = [value for value in covered if value is not None]
        cells.append(sum(present) / len(present) if present else None)
    return cells


def sparkline(values: Sequence[float | None], width: int = SPARKLINE_WIDTH) -> str:
    """`▁▂▅█▇` scaled from the lowest to the highest value; a gap (None) is a space.

    More values than `width` are averaged into `width` cells; a flat line sits in the
    middle, so "constant" does not read as "zero".
    """
    cells = [
        value if value is not None and math.isfinite(value) else None
        for value in _squeeze(values, width)
    ]
    present = [value for value in cells if value is not None]
    if not present:
        return " " * len(cells)
    low, high = min(present), max(present)
    top = len(BARS) - 1

    def bar(value: float | None) -> str:
        if value is None:
            return " "
        if high == low:
            return BARS[top // 2]
        return BARS[round((value - low) / (high - low) * top)]

    return "".join(bar(value) for value in cells)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_history(
    *,
    source: str,
    name: str,
    result: QueryResult,
    start: datetime,
    end: datetime,
    step: timedelta | None,
    aggregation: str,
) -> list[str]:
    """The lines `tradewatch metrics` prints: a heading, then per series a sparkline,
    its range and last value, and its points."""
    how = f"{aggregation} per {format_duration(step)}" if step is not None else "raw samples"
    lines = [f"{source} {name}: {how}, {format_time(start)} to {format_time(end)}"]
    for series in result.series:
        values = [value for _, value in series.points]
        lines.append("")
        if not values:
            lines.append(f"{format_labels(series.labels)}  no samples in this range")
            continue
        drawn = bucket_values(series.points, start, end, step) if step is not None else list(values)
        lines.append(
            f"{format_labels(series.labels)}  {sparkline(drawn)}  "
            f"min {format_value(min(values))}  max {format_value(max(values))}  "
            f"last {format_value(values[-1])}  ({_count(len(values), 'point')})"
        )
        lines.extend(f"  {format_time(ts)}  {format_value(value)}" for ts, value in series.points)
    if result.truncated:
        lines.append("")
        lines.append(
            f"(cut at {_count(result.limit, 'point')}: use a shorter --since or a larger --step)"
        )
    return lines


# --- database -----------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    source: Source
    result: QueryResult
    start: datetime
    end: datetime
    step: timedelta | None


def metric_history(
    *,
    source_ref: str,
    name: str,
    labels: dict[str, str] | None,
    since: timedelta,
    step: timedelta | None,
    aggregation: Aggregation,
    now: datetime,
) -> History:
    """Query a source's metric over the last `since`; CommandError names a bad argument."""
    source = source_find(source_ref)
    if source is None:
        raise CommandError(f"SOURCE: no source with id or name {source_ref!r}.")
    start = now - since
    try:
        result = metric_query(
            source=source, name=name, labels=labels, start=start, end=now, step=step,
            aggregation=aggregation,
        )  # fmt: skip
    except ParamError as error:
        raise CommandError(f"--{error.field}: {error.message}.") from None
    if not result.series:
        raise CommandError(_no_series(source, name, labels))
    return History(source=source, result=result, start=start, end=now, step=step)


def _no_series(source: Source, name: str, labels: dict[str, str] | None) -> str:
    """Why nothing matched, with what does exist, so the next try is the right one."""
    series = MetricSeries.objects.filter(source=source)
    if labels is not None and series.filter(name=name).exists():
        known = series.filter(name=name).order_by("labels_key").values_list("labels", flat=True)
        shown = ", ".join(format_labels(each) for each in known[:10])
        which = f"labelled {format_labels(labels)}" if labels else "without labels"
        return f"--labels: {source.name} has no series of {name!r} {which}; it has {shown}."
    names = list(series.order_by("name").values_list("name", flat=True).distinct()[:30])
    known_names = ", ".join(names) if names else "none yet"
    return f"NAME: {source.name} has no metric {name!r}; its metrics: {known_names}."


# --- the verb -----------------------------------------------------------------------------


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="the source's name or id")
    parser.add_argument("name", metavar="NAME", help="the metric's name, e.g. drawdown_pct")
    parser.add_argument(
        "--labels", type=labels_argument, default=None, metavar="K=V,...",
        help="one series: k=v,k2=v2 or a JSON object; empty for the series without labels "
        "(default: every series of the metric)",
    )  # fmt: skip
    parser.add_argument(
        "--since", type=duration, default=timedelta(hours=1), metavar="DURATION",
        help="how far back, e.g. 15m, 6h, 7d (default 1h)",
    )  # fmt: skip
    parser.add_argument(
        "--step", default="auto",
        help="bucket width, e.g. 1m; `auto` (default) picks about 60 buckets; "
        "`raw` prints every sample",
    )  # fmt: skip
    parser.add_argument(
        "--aggregation", choices=AGGREGATIONS, default="avg",
        help="how a bucket's samples become one point (default avg)",
    )  # fmt: skip


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    since: timedelta = options["since"]
    step_text: str = options["step"]
    step: timedelta | None
    if step_text == "raw":
        step = None
    elif step_text == "auto":
        step = auto_step(since)
    else:
        try:
            step = parse_step(step_text)
        except ParamError as error:
            raise CommandError(f"--step: {error.message}, `auto` or `raw`.") from None
    history = metric_history(
        source_ref=options["source"],
        name=options["name"],
        labels=options["labels"],
        since=since,
        step=step,
        aggregation=options["aggregation"],
        now=timezone.now(),
    )
    for line in format_history(
        source=history.source.name,
        name=options["name"],
        result=history.result,
        start=history.start,
        end=history.end,
        step=history.step,
        aggregation=options["aggregation"],
    ):
        out.write(line)
    return 0
