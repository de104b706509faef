"""Time partitions of samples, trades and events (PostgreSQL): created ahead, dropped whole.

Each of the three tables is partitioned by range of `ts`, one partition per period:
a day for samples (the bulk: millions of rows a day, so retention frees a day at a
time), a week for trades and events (thousands a day: daily partitions would be mostly
empty files, and every query without a time bound, such as "the newest event of a
source", pays a little per partition; a week keeps what outlives the retention within
7 days of it).

A write never fails for want of a partition: each table has a default partition that
takes any row no other partition covers (beat down for days, a backfill). Beat creates
the coming periods' partitions ahead (`partitions_ensure`), and moves rows caught in the
default partition into their period's own partition when it creates it ("split").

Retention (`metrics.retention`) drops a partition once it lies wholly before the cutoff;
one partly inside the window waits for the next run. Dropping a partition is a catalog
change: seconds whatever its size, and no dead rows left for vacuum.

The embedded SQLite mode has plain tables: nothing here runs there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# Weekly partitions start on a Monday (2024-01-01 was one), daily ones at midnight UTC.
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

# How far ahead beat keeps partitions ready: a beat down for this long still finds them.
AHEAD = timedelta(days=3)
# DDL on a partitioned table queues behind running statements and every statement
# after it queues behind the DDL: give up soon and try again at the next run.
LOCK_TIMEOUT = "2s"
# One beat at a time creates, splits and drops (a second run waits for the first).
_ADVISORY_LOCK = 0x7477_7061_7274  # "twpart"


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by `ts`, one partition per `width`."""

    table: str
    width: timedelta

    @property
    def default(self) -> str:
        return f"{self.table}_default"

    def period_start(self, at: datetime) -> datetime:
        """The start of the period holding `at`."""
        periods = (at - _EPOCH) // self.width
        return _EPOCH + periods * self.width

    def partition_name(self, start: datetime) -> str:
        return f"{self.table}_p{start.astimezone(UTC):%Y%m%d}"

    def periods(self, since: datetime, until: datetime) -> Iterator[datetime]:
        """The start of every period from the one holding `since` to the one holding `until`."""
        start = self.period_start(since)
        while start <= until:
            yield start
            start += self.width


SAMPLES = PartitionedTable("metrics_metricsample", DAY)
TRADES = PartitionedTable("metrics_trade", WEEK)
EVENTS = PartitionedTable("metrics_event", WEEK)
PARTITIONED: tuple[PartitionedTable, ...] = (SAMPLES, TRADES, EVENTS)


@dataclass(frozen=True)
class Partition:
    """One range partition: rows with `start <= ts < end`."""

    name: str
    start: datetime
    end: datetime


_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def is_partitioned(table: str) -> bool:
    """Whether `table` is a partitioned table in this database (never on SQLite)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass(%s)", [table]
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def partitions_of(table: str) -> list[Partition]:
    """The range partitions of `table`, oldest first (the default partition left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:  # DEFAULT
            continue
        start, end = (datetime.fromisoformat(value) for value in match.groups())
        found.append(Partition(name, start, end))
    return sorted(found, key=lambda partition: partition.start)


def _literal(at: datetime) -> str:
    """A time as an SQL literal (DDL takes no parameters); always a datetime we computed."""
    return f"'{at.astimezone(UTC).isoformat()}'::timestamptz"


def _create(cursor: CursorWrapper, spec: PartitionedTable, start: datetime) -> int:
    """Create the partition of the period at `start`, moving into it the rows the default
    partition caught for that period; return how many rows moved."""
    end = start + spec.width
    name = spec.partition_name(start)
    execute = cursor.execute
    execute(f"SELECT 1 FROM {spec.default} WHERE ts >= %s AND ts < %s LIMIT 1", [start, end])
    caught = cursor.fetchone() is not None
    # Built apart and attached: attaching blocks neither reads nor writes of the table.
    execute(f"CREATE TABLE {name} (LIKE {spec.table} INCLUDING DEFAULTS)")
    moved = 0
    if caught:
        # Writers wait for the few rows to move, so none lands in the default partition
        # for this period between the move and the attach.
        execute(f"LOCK TABLE {spec.table} IN SHARE ROW EXCLUSIVE MODE")
        execute(
            f"WITH moved AS (DELETE FROM {spec.default} WHERE ts >= %s AND ts < %s "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        moved = cursor.rowcount
    # The check lets the attach skip scanning the new partition for rows out of range.
    low, high = _literal(start), _literal(end)
    execute(f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (ts >= {low} AND ts < {high})")
    execute(f"ALTER TABLE {spec.table} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})")
    execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
    return moved


@dataclass(frozen=True)
class Ensured:
    created: list[str]
    rows_moved: int
    # Partitions left for the next run: a lock not had in time, a row racing the attach.
    failed: list[str]


def partitions_ensure(*, now: datetime, oldest: datetime, ahead: timedelta = AHEAD) -> Ensured:
    """Create every missing partition from the period holding `oldest` (the retention's
    start) to `ahead` of `now`, each with the rows the default partition caught for it.

    Safe to run twice at once: the second waits for the first, then finds nothing to do.
    Each partition is created in a transaction of its own, so one that cannot take its
    lock in time (a long query holds the table) leaves the others done, and is tried
    again at the next run; meanwhile its rows go to the default partition.
    """
    created: list[str] = []
    failed: list[str] = []
    moved = 0
    for spec in PARTITIONED:
        if not is_partitioned(spec.table):
            continue
        have = {partition.start for partition in partitions_of(spec.table)}
        for start in spec.periods(oldest, now + ahead):
            if start in have:
                continue
            name = spec.partition_name(start)
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    # Again under the lock: a run at the same time may have just made it.
                    if start in {partition.start for partition in partitions_of(spec.table)}:
                        continue
                    moved += _create(cursor, spec, start)
            except DatabaseError as exc:
                logger.warning("partition %s not created this time: %s", name, exc)
                failed.append(name)
                continue
            created.append(name)
    return Ensured(created=created, rows_moved=moved, failed=failed)


def expired_partitions(table: str, cutoff: datetime) -> list[Partition]:
    """The partitions of `table` wholly before `cutoff` (one straddling it is kept)."""
    return [partition for partition in partitions_of(table) if partition.end <= cutoff]


def partitions_drop(table: str, cutoff: datetime) -> list[str]:
    """Drop the partitions of `table` wholly before `cutoff`; return their names."""
    dropped = []
    for partition in expired_partitions(table, cutoff):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [partition.name])
                row = cursor.fetchone()
                if row is None or not row[0]:  # another run dropped it meanwhile
                    continue
                # A moment's exclusive lock on the table, waited for at most LOCK_TIMEOUT.
                cursor.execute(f"DROP TABLE {partition.name}")
        except DatabaseError as exc:
            logger.warning("partition %s not dropped this time: %s", partition.name, exc)
            continue
        dropped.append(partition.name)
    return dropped
