"""A backtest's chart as inline SVG: the metric, the thresholds, the firing spans.

Pure: the answer's plain values in, markup out (numbers and escaped text only). Each
run (current thresholds, an edit) gets its colour: its thresholds are lines across the
chart (clear values dotted) and the spans its alerts fired are bands along the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from django.utils.html import escape

WIDTH: Final = 900
HEIGHT: Final = 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 12, 46
COLOURS: Final = {"current": "#c0392b", "edited": "#2c6fbb"}


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _number(value: float) -> str:
    return f"{value:.6g}"


def chart_svg(chart: dict[str, Any], runs: Sequence[dict[str, Any]], start: str, end: str) -> str:
    """One series' chart: `chart` from the answer's `charts`, the answer's `runs`."""
    t0, t1 = _time(start), _time(end)
    span = max(t1 - t0, 1e-9)
    points = chart["points"]
    levels = [p[1] for p in points] + [p[2] for p in points]
    for run in runs:
        for tier in run["thresholds"]:
            levels.append(tier["value"])
            if tier["clear_value"] is not None:
                levels.append(tier["clear_value"])
    low, high = (min(levels), max(levels)) if levels else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    margin = (high - low) * 0.05
    low, high = low - margin, high + margin
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(moment: float) -> float:
        return PAD_LEFT + (moment - t0) / span * plot_w

    def y(value: float) -> float:
        return PAD_TOP + (high - value) / (high - low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="backtest-chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart["source"])} over the period">',
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#bbb"/>',
    ]
    for value in (low + margin, (low + high) / 2, high - margin):
        parts.append(
            f'<text x="{PAD_LEFT - 4}" y="{y(value) + 4:.1f}" font-size="10" '
            f'text-anchor="end">{_number(value)}</text>'
        )
    # The metric: a band from each bucket's lowest to its highest value.
    if points:
        upper = " ".join(f"{x(_time(p[0])):.1f},{y(p[2]):.1f}" for p in points)
        lower = " ".join(f"{x(_time(p[0])):.1f},{y(p[1]):.1f}" for p in reversed(points))
        parts.append(
            f'<polygon class="metric" points="{upper} {lower}" fill="#7f8c8d" '
            'fill-opacity="0.35" stroke="#555" stroke-width="0.8"/>'
        )
    for row, run in enumerate(runs):
        colour = COLOURS.get(run["label"], "#8e44ad")
        dash = "" if run["label"] == "current" else ' stroke-dasharray="6 3"'
        for tier in run["thresholds"]:
            parts.append(
                f'<line class="threshold {escape(run["label"])}" x1="{PAD_LEFT}" '
                f'x2="{WIDTH - PAD_RIGHT}" y1="{y(tier["value"]):.1f}" '
                f'y2="{y(tier["value"]):.1f}" stroke="{colour}"{dash}>'
                f"<title>{escape(run['label'])}: {escape(tier['severity'])} "
                f"{escape(tier['comparison'])} {_number(tier['value'])}</title></line>"
            )
            if tier["clear_value"] is not None:
                parts.append(
                    f'<line class="clear" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
                    f'y1="{y(tier["clear_value"]):.1f}" y2="{y(tier["clear_value"]):.1f}" '
                    f'stroke="{colour}" stroke-dasharray="1 3"/>'
                )
        band_y = HEIGHT - PAD_BOTTOM + 6 + row * 10
        for alert in run["alerts"]:
            if alert["source_id"] != chart["source_id"] or alert["labels"] != chart["labels"]:
                continue
            begin = _time(alert["fired_at"] or alert["start"])
            finish = _time(alert["end"]) if alert["end"] else t1
            opacity = "0.9" if alert["fired_at"] else "0.35"  # pending only: pale
            left, width = x(begin), max(1.0, x(finish) - x(begin))
            parts.append(
                f'<rect class="span {escape(run["label"])}" x="{left:.1f}" y="{band_y}" '
                f'width="{width:.1f}" height="8" fill="{colour}" fill-opacity="{opacity}">'
                f"<title>{escape(run['label'])}: {escape(alert['peak_severity'])} from "
                f"{escape(alert['start'])}</title></rect>"
            )
            parts.append(
                f'<rect x="{left:.1f}" y="{PAD_TOP}" width="{width:.1f}" height="{plot_h}" '
                f'fill="{colour}" fill-opacity="0.07"/>'
            )
    parts.append(
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 4}" font-size="10">{escape(start[:19])}</text>'
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 4}" font-size="10" '
        f'text-anchor="end">{escape(end[:19])}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
