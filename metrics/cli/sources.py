"""Sources on the command line: found by name or id, their heartbeat options, their list."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.db.models import Count, Q

from core.cli_text import format_age, format_duration, render_table, seconds
from metrics.models import HEARTBEAT_PERIOD_TOO_SHORT, MIN_HEARTBEAT_PERIOD, Source
from metrics.queries import heartbeat_overdue, source_find
from metrics.schedules import heartbeat_clock


def source_ids(
    refs: Sequence[str], *, argument: str = "--source", returncode: int = 1
) -> list[int]:
    """The ids of the sources `refs` name; an unknown one is an error, never an empty result
    (a typo in `tail --source` would otherwise look like a quiet night)."""
    ids = []
    for ref in refs:
        source = source_find(ref)
        if source is None:
            raise CommandError(
                f"{argument}: no source with id or name {ref!r}.", returncode=returncode
            )
        ids.append(source.pk)
    return ids


# --- `source add` options -----------------------------------------------------------------


def heartbeat_period(text: str) -> timedelta:
    """`--heartbeat-period`: seconds, at least the model's minimum (said with its reason)."""
    period = seconds(text)
    if period < MIN_HEARTBEAT_PERIOD:
        reason = HEARTBEAT_PERIOD_TOO_SHORT
        raise argparse.ArgumentTypeError(f"{text!r}: {reason[:1].lower()}{reason[1:]}")
    return period


def heartbeat_grace(text: str) -> timedelta:
    """`--heartbeat-grace`: seconds, 0 or more."""
    return seconds(text)


# --- `source list` ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceListed:
    """One source as `source list` shows it."""

    id: int
    name: str
    kind: str
    enabled: bool
    tags: list[str]
    keys: int
    heartbeat_period: timedelta
    heartbeat_grace: timedelta
    last_heartbeat: datetime | None
    # Outside its schedule (quiet is expected), and where its heartbeat clock starts
    # (the newest heartbeat, or its session's opening when later).
    market_closed: bool = False
    counted_from: datetime | None = None


HEADERS = ("ID", "NAME", "KIND", "STATE", "TAGS", "KEYS", "HEARTBEAT EXPECTED", "LAST HEARTBEAT")


def sources_listed(*, now: datetime) -> list[SourceListed]:
    """Every source, by name, with its usable keys counted and its newest heartbeat."""
    usable = Q(api_keys__revoked=False) & (
        Q(api_keys__expiry_date__isnull=True) | Q(api_keys__expiry_date__gt=now)
    )
    sources = (
        Source.objects.order_by("name")
        .select_related("heartbeat")
        .prefetch_related("tags")
        .annotate(usable_keys=Count("api_keys", filter=usable))
    )
    listed = []
    for source in sources:
        beat = getattr(source, "heartbeat", None)
        closed, due_for = (False, None)
        if beat is not None:
            closed, due_for = heartbeat_clock(source, beat.last_seen, now)
        listed.append(
            SourceListed(
                id=source.pk,
                name=source.name,
                kind=source.kind,
                enabled=source.enabled,
                tags=[tag.name for tag in source.tags.all()],
                keys=source.usable_keys,
                heartbeat_period=source.heartbeat_period,
                heartbeat_grace=source.heartbeat_grace,
                last_heartbeat=beat.last_seen if beat is not None else None,
                market_closed=closed,
                counted_from=None if due_for is None else now - due_for,
            )
        )
    return listed


def format_last_heartbeat(source: SourceListed, now: datetime) -> str:
    """`12s ago`, `5m ago (overdue)` past period and grace, `14h00m ago (market closed)`
    outside its schedule, or `never`."""
    if source.last_heartbeat is None:
        return "never"
    age = max(now - source.last_heartbeat, timedelta(0))
    if source.market_closed:
        return f"{format_age(age)} ago (market closed)"
    due_for = age if source.counted_from is None else max(now - source.counted_from, timedelta(0))
    overdue = heartbeat_overdue(
        age=due_for, period=source.heartbeat_period, grace=source.heartbeat_grace
    )
    return f"{format_age(age)} ago" + (" (overdue)" if overdue else "")


def format_sources(sources: Sequence[SourceListed], now: datetime) -> list[str]:
    """The table `source list` prints (pure)."""
    rows = [
        [
            str(source.id),
            source.name,
            source.kind,
            "enabled" if source.enabled else "disabled",
            ",".join(source.tags) or "-",
            str(source.keys),
            f"every {format_duration(source.heartbeat_period)}, "
            f"{format_duration(source.heartbeat_grace)} grace",
            format_last_heartbeat(source, now),
        ]
        for source in sources
    ]
    return render_table(HEADERS, rows)
