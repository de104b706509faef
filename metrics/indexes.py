"""Indexes that fit both databases Tradewatch runs on."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import BrinIndex
from django.db import models


class TimeBrinIndex(BrinIndex):
    """BRIN on PostgreSQL (a few kB for any table size), a plain index elsewhere.

    Time-ordered inserts make BRIN's block ranges tight, which is what retention and
    "since" scans over append-only tables need. The embedded SQLite mode has no BRIN.
    """

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor == "postgresql":
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        return models.Index.create_sql(self, model, schema_editor, **kwargs)
