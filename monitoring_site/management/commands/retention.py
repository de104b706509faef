"""`manage.py retention report|prune`: table sizes, and pruning by hand with progress.

Beat prunes every hour on its own (`monitoring_site.schedule`); this is for looking
at what the tables hold, and for the first prune after retention was shortened or
pruning was off for a while, when watching it go matters.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.db.models import Model, QuerySet


@dataclass(frozen=True)
class Retained:
    """One kind of row under retention: how to count what is past it, how to prune it."""

    label: str
    model: type[Model]
    expired: Callable[[], QuerySet[Any]]
    prune: Callable[[Callable[[int], object]], int]


def retained() -> list[Retained]:
    """Every kind of row Tradewatch prunes, in pruning order."""
    from alerts.models import Alert, Notification
    from alerts.retention import (
        expired_alerts,
        expired_notifications,
        notifications_prune,
        resolved_alerts_prune,
    )
    from health.models import HealthReport
    from health.services import expired_health_reports, health_reports_prune
    from metrics.models import Event, MetricSample, Trade
    from metrics.retention import metric_cutoff, metric_rows_prune

    def older(model: type[Model]) -> Callable[[], QuerySet[Any]]:
        return lambda: model._default_manager.filter(ts__lt=metric_cutoff())

    def prune_older(model: type[Model]) -> Callable[[Callable[[int], object]], int]:
        # Partitions wholly past the cutoff go whole (their rows count as deleted, but
        # the bar only moves for rows deleted one by one); the default partition's in chunks.
        def prune(progress: Callable[[int], object]) -> int:
            cutoff = metric_cutoff()
            before = model._default_manager.filter(ts__lt=cutoff).count()
            metric_rows_prune(model, cutoff, progress=progress)
            return before - model._default_manager.filter(ts__lt=cutoff).count()

        return prune

    return [
        Retained("metric samples", MetricSample, older(MetricSample), prune_older(MetricSample)),
        Retained("trades", Trade, older(Trade), prune_older(Trade)),
        Retained("events", Event, older(Event), prune_older(Event)),
        Retained(
            "notifications", Notification, expired_notifications,
            lambda progress: notifications_prune(progress=progress),
        ),
        Retained(
            "alerts", Alert, expired_alerts,
            lambda progress: resolved_alerts_prune(progress=progress),
        ),
        Retained(
            "health reports", HealthReport, expired_health_reports,
            lambda progress: health_reports_prune(progress=progress),
        ),
    ]  # fmt: skip


def table_size(model: type[Model]) -> tuple[int, int | None]:
    """(rows, bytes on disk with indexes) of a model's table, its partitions included;
    rows estimated on PostgreSQL."""
    table = model._meta.db_table
    if connection.vendor != "postgresql":
        return model._default_manager.count(), None
    with connection.cursor() as cursor:
        cursor.execute(
            # The table itself, or its partitions (the partitioned table holds no rows).
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint, "
            "coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.oid = %s::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree(%s))",
            [table, table],
        )
        rows, size = cursor.fetchone()
    return int(rows), int(size)


def human_bytes(size: int | None) -> str:
    """1536 → '1.5 KiB'."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class ProgressBar:
    """A one-line bar redrawn in place: `[#####-----]  50%  500/1,000 alerts`."""

    def __init__(self, out: TextIO, total: int, label: str, width: int = 30) -> None:
        self.out, self.total, self.label, self.width = out, total, label, width
        self.done = 0

    def advance(self, count: int) -> None:
        self.done += count
        self.draw()

    def draw(self) -> None:
        # More rows than counted may go (rows expiring meanwhile): never past 100 %.
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.out.write(f"\r[{bar}] {fraction:4.0%}  {self.done:,}/{self.total:,} {self.label}")
        self.out.flush()

    def finish(self) -> None:
        self.draw()
        self.out.write("\n")
        self.out.flush()


class Command(BaseCommand):
    help = "Report table sizes and what retention would delete (report), or prune now (prune)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["report", "prune"])
        parser.add_argument(
            "--only",
            action="append",
            metavar="KIND",
            help="Prune only this kind (repeatable): "
            "metric samples, trades, events, notifications, alerts, health reports.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kinds = retained()
        if options["only"]:
            wanted = {name.strip().lower() for name in options["only"]}
            unknown = wanted - {kind.label for kind in kinds}
            if unknown:
                from django.core.management.base import CommandError

                raise CommandError(f"unknown kind(s): {', '.join(sorted(unknown))}")
            kinds = [kind for kind in kinds if kind.label in wanted]
        if options["action"] == "report":
            self.report(kinds)
        else:
            self.prune(kinds)

    def report(self, kinds: list[Retained]) -> None:
        self.stdout.write(f"{'kind':<16} {'table':<28} {'rows':>12} {'size':>10} {'expired':>10}")
        for kind in kinds:
            rows, size = table_size(kind.model)
            expired = kind.expired().count()
            self.stdout.write(
                f"{kind.label:<16} {kind.model._meta.db_table:<28} {rows:>12,} "
                f"{human_bytes(size):>10} {expired:>10,}"
            )

    def prune(self, kinds: list[Retained]) -> None:
        # The bar redraws one line in place: write around Django's line-ending wrapper.
        out: TextIO = getattr(self.stdout, "_out", sys.stdout)
        for kind in kinds:
            total = kind.expired().count()
            bar = ProgressBar(out, total, kind.label)
            bar.draw()
            deleted = kind.prune(bar.advance)
            bar.finish()
            self.stdout.write(f"  deleted {deleted:,} {kind.label}")
