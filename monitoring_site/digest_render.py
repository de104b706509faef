"""How an operations digest reads: its title, text, HTML with equity charts, and the
payload its notifications carry. Pure: a `monitoring_site.digest.Digest` in, text out.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.urls import reverse

from alerts.models import DigestRun
from health.scoring import describe_seconds

if TYPE_CHECKING:
    from .digest import Digest, Incidents, SourceFigures


def money(value: float) -> str:
    return f"{value:+,.2f}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def duration(seconds: float | None) -> str:
    return "n/a" if seconds is None else describe_seconds(seconds)


def title(digest: Digest) -> str:
    kind = "Daily" if digest.period.kind == DigestRun.Kind.DAILY else "Weekly"
    return f"{kind} operations digest: {digest.policy}, {_when(digest)}"


def _when(digest: Digest) -> str:
    zone = ZoneInfo(digest.timezone)
    start, end = (moment.astimezone(zone) for moment in (digest.period.start, digest.period.end))
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} {digest.timezone}"


def source_line(figures: SourceFigures) -> str:
    score = "n/a" if figures.lowest_score is None else str(figures.lowest_score)
    return (
        f"{figures.name}: PnL day {money(figures.pnl_day)}, week {money(figures.pnl_week)}; "
        f"drawdown now {percent(figures.drawdown_now)}, max {percent(figures.drawdown_max)}; "
        f"{figures.trades} trades, win rate {percent(figures.win_rate)}; "
        f"lowest health score {score}, heartbeat lapses {figures.heartbeat_lapses}"
    )


def incidents_line(incidents: Incidents) -> str:
    by = ", ".join(f"{label} {count}" for label, count in incidents.opened.items() if count)
    return (
        f"{incidents.total} opened" + (f" ({by})" if by else "")
        + f"; acknowledged {incidents.acknowledged} (median "
        f"{duration(incidents.ack_median_seconds)}, longest "
        f"{duration(incidents.ack_longest_seconds)}); resolved {incidents.resolved} (median "
        f"{duration(incidents.resolve_median_seconds)}, longest "
        f"{duration(incidents.resolve_longest_seconds)}); {incidents.still_open} still open"
    )  # fmt: skip


def text(digest: Digest) -> str:
    """The digest as plain text: chat channels and the command line show this."""
    lines = [title(digest), "", "Sources:"]
    lines += [f"- {source_line(figures)}" for figures in digest.sources] or ["- none"]
    lines += [
        "",
        f"Incidents: {incidents_line(digest.incidents)}",
        f"Delivery: {digest.sent} notifications sent, {digest.failed} failed",
    ]
    return "\n".join(lines)


def equity_svg(points: list[tuple[datetime, float]], width: int = 160, height: int = 40) -> str:
    """A small line of equity over the period, as inline SVG (empty without points)."""
    if len(points) < 2:
        return ""
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds() or 1.0
    low = min(value for _, value in points)
    high = max(value for _, value in points)
    rise = (high - low) or 1.0
    coordinates = " ".join(
        f"{(moment - first).total_seconds() / span * (width - 2) + 1:.1f},"
        f"{height - 1 - (value - low) / rise * (height - 2):.1f}"
        for moment, value in points
    )
    colour = "#43a047" if points[-1][1] >= points[0][1] else "#e53935"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="equity">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coordinates}"/>'
        "</svg>"
    )


def _cells(f: SourceFigures) -> list[str]:
    score = "n/a" if f.lowest_score is None else str(f.lowest_score)
    return [
        f.name, money(f.pnl_day), money(f.pnl_week), percent(f.drawdown_now),
        percent(f.drawdown_max), str(f.trades), percent(f.win_rate), score,
        str(f.heartbeat_lapses),
    ]  # fmt: skip


def html(digest: Digest) -> str:
    """The digest as HTML for email, each source's equity as an inline SVG chart."""
    head = (
        "<tr><th>Source</th><th>PnL day</th><th>PnL week</th><th>Drawdown now</th>"
        "<th>Drawdown max</th><th>Trades</th><th>Win rate</th><th>Lowest score</th>"
        "<th>Heartbeat lapses</th><th>Equity</th></tr>"
    )
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{escape(cell)}</td>" for cell in _cells(figures))
        + f"<td>{equity_svg(figures.equity)}</td></tr>"
        for figures in digest.sources
    )
    return (
        "<html><body>"
        f"<h2>{escape(title(digest))}</h2>"
        f"<table cellpadding='4' border='1' style='border-collapse:collapse'>{head}{rows}</table>"
        f"<p><strong>Incidents:</strong> {escape(incidents_line(digest.incidents))}</p>"
        f"<p><strong>Delivery:</strong> {digest.sent} notifications sent, "
        f"{digest.failed} failed</p>"
        "</body></html>"
    )


def payload(digest: Digest) -> dict[str, Any]:
    """What the digest's notifications carry: the words, and the figures for webhooks."""
    report = {
        "title": title(digest),
        "text": text(digest),
        "html": html(digest),
        "policy": digest.policy,
        "kind": digest.period.kind,
        "period_start": digest.period.start.isoformat(),
        "period_end": digest.period.end.isoformat(),
        "sources": [
            {key: value for key, value in vars(f).items() if key != "equity"}
            for f in digest.sources
        ],
        "incidents": {**vars(digest.incidents), "total": digest.incidents.total},
        "delivery": {"sent": digest.sent, "failed": digest.failed},
    }
    return {
        "severity": "INFO",
        "rule": {"name": report["title"]},
        "message": report["text"],
        "url": reverse("admin:index"),
        "report": report,
    }
