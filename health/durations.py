"""Durations and moments in the words an operator reads at a glance ("7 min", "since
12:03 UTC (7 min)"): the health checks' and the scores' issues all say them alike."""

from __future__ import annotations

from datetime import datetime


def describe_since(moment: datetime, now: datetime | None = None) -> str:
    """When a state began, in words: "since 12:03 UTC (7 min)"; with the date past a day."""
    age = None if now is None else (now - moment).total_seconds()
    clock = "%H:%M" if age is not None and age < 86400 else "%Y-%m-%d %H:%M"
    zone = moment.tzname()
    text = f"since {moment.strftime(clock)}{f' {zone}' if zone else ''}"
    return text if age is None else f"{text} ({describe_seconds(age)})"


def describe_seconds(seconds: float) -> str:
    """A duration in words an operator reads at a glance: "45 s", "7 min", "3 h 20 min"."""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"
