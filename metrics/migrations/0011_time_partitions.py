# Samples, trades and events become tables partitioned by time (PostgreSQL only; the
# embedded SQLite mode keeps plain tables). Every row is kept: each table is renamed,
# a partitioned table of the same columns takes its name, partitions are made for the
# retention window and a few days ahead (older or later rows go to the default
# partition), the rows are copied over, and the old table's indexes and foreign keys are
# made again on the new one under the same names.
#
# PostgreSQL keeps a unique key only within a partition unless it holds the partition
# key, so "a trade id once per source" moves to a small table of its own (TradeId),
# filled here from the trades already stored.
#
# The period arithmetic is copied from metrics.partitions as it stands, so that this
# migration does the same thing however that module changes later.

from datetime import UTC, datetime, timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday: weekly partitions start on one
AHEAD = timedelta(days=3)
TABLES = (
    # table, partition width, primary key once partitioned, primary key before
    ("metrics_metricsample", timedelta(days=1), "series_id, ts", "series_id, ts"),
    ("metrics_trade", timedelta(days=7), "id, ts", "id"),
    ("metrics_event", timedelta(days=7), "id, ts", "id"),
)


def _literal(at):
    return f"'{at.astimezone(UTC).isoformat()}'::timestamptz"


def _indexes_and_constraints(cursor, table):
    """The table's indexes (those not backing a key) and its foreign keys and checks."""
    cursor.execute(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "WHERE x.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conrelid = x.indrelid AND c.conindid = x.indexrelid "
        "AND c.contype IN ('p', 'u', 'x')) ORDER BY x.indexrelid",
        [table],
    )
    # A partitioned table's index reads "ON ONLY t"; made on a plain table, it is "ON t".
    indexes = [row[0].replace(" ON ONLY ", " ON ") for row in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('f', 'c') ORDER BY oid",
        [table],
    )
    return indexes, cursor.fetchall()


def _next_id(cursor, table):
    """The id the next row would get: past the sequence's last value and the largest id."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
    after_rows = cursor.fetchone()[0]
    if sequence is None:
        return after_rows
    cursor.execute(f"SELECT last_value + (CASE WHEN is_called THEN 1 ELSE 0 END) FROM {sequence}")
    return max(after_rows, cursor.fetchone()[0])


def _rebuild(cursor, table, primary_key, indexes, constraints):
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({primary_key})")
    for definition in indexes:
        cursor.execute(definition)
    for name, definition in constraints:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")


def partition_tables(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    now = timezone.now()
    oldest = now - timedelta(days=settings.TRADEWATCH_METRIC_RETENTION_DAYS)
    with schema_editor.connection.cursor() as cursor:
        for table, width, primary_key, _ in TABLES:
            has_id = primary_key.startswith("id")
            indexes, constraints = _indexes_and_constraints(cursor, table)
            next_id = _next_id(cursor, table) if has_id else None
            old = f"{table}_unpartitioned"
            cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
            # Columns, types, NOT NULL and defaults; an identity becomes a plain column
            # (PostgreSQL 15 has none on partitioned tables): a sequence below numbers it.
            cursor.execute(
                f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)"
            )
            cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
            start = _EPOCH + ((oldest - _EPOCH) // width) * width
            while start <= now + AHEAD:
                cursor.execute(
                    f"CREATE TABLE {table}_p{start:%Y%m%d} PARTITION OF {table} "
                    f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(start + width)})"
                )
                start += width
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {old}")
            cursor.execute(f"DROP TABLE {old}")
            if has_id:
                sequence = f"{table}_id_seq"
                cursor.execute(f"CREATE SEQUENCE {sequence} OWNED BY {table}.id")
                cursor.execute("SELECT setval(%s, %s, false)", [sequence, next_id])
                cursor.execute(
                    f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{sequence}')"
                )
            _rebuild(cursor, table, primary_key, indexes, constraints)


def unpartition_tables(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, _, _, primary_key in TABLES:
            has_id = primary_key == "id"
            indexes, constraints = _indexes_and_constraints(cursor, table)
            next_id = _next_id(cursor, table) if has_id else None
            old = f"{table}_partitioned"
            cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
            cursor.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)")
            if has_id:
                cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP DEFAULT")
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {old}")
            cursor.execute(f"DROP TABLE {old}")  # with its partitions and sequence
            if has_id:
                cursor.execute(
                    f"ALTER TABLE {table} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"
                )
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [table, next_id]
                )
            _rebuild(cursor, table, primary_key, indexes, constraints)


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0010_schedule_history_triggers'),
    ]

    operations = [
        migrations.CreateModel(
            name='TradeId',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('trade_id', models.CharField(max_length=100)),
                ('ts', models.DateTimeField(help_text='The time of the trade stored under this id.')),
                ('source', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='metrics.source')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('source', 'trade_id'), name='trade_id_unique_per_source')],
            },
        ),
        migrations.RunSQL(
            "INSERT INTO metrics_tradeid (source_id, trade_id, ts) "
            "SELECT source_id, trade_id, ts FROM metrics_trade",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveConstraint(
            model_name='trade',
            name='trade_unique_per_source',
        ),
        migrations.RunPython(partition_tables, unpartition_tables),
    ]
