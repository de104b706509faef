"""PostgreSQL: a query on a connection of its own, bounded by the check's timeout."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import psycopg
from django.db import connections

from health.scoring import Status

from .base import CheckResult, Probe, Target, elapsed_ms, number, text

DEFAULT_QUERY = "SELECT 1"


def _connection_arguments(dsn: str | None) -> dict[str, Any]:
    """psycopg's arguments: the configured DSN, or Tradewatch's own database."""
    if dsn:
        return {"conninfo": dsn}
    db = connections["default"].settings_dict
    arguments = {
        "dbname": db.get("NAME"), "user": db.get("USER"), "password": db.get("PASSWORD"),
        "host": db.get("HOST"), "port": db.get("PORT"),
    }  # fmt: skip
    return {key: value for key, value in arguments.items() if value not in (None, "")}


class PostgresProbe(Probe):
    """CRITICAL when the server cannot be reached or the query fails or runs too long.

    Config: `dsn` (libpq form; empty: Tradewatch's own database), `query` (SELECT 1,
    run read-only), `latency_limit_ms`. A connection of its own rather than Django's:
    the probe runs on a worker thread and must not touch a connection it shares.
    """

    kind = "postgres"

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        text(config, "dsn")
        text(config, "query")
        number(config, "latency_limit_ms", None, minimum=1)

    def run(self, target: Target, now: datetime) -> CheckResult:
        query = text(target.config, "query") or DEFAULT_QUERY
        limit = number(target.config, "latency_limit_ms", None, minimum=1)
        timeout_ms = max(1, int(target.timeout * 1000))
        started = time.perf_counter()
        try:
            with psycopg.connect(
                **_connection_arguments(text(target.config, "dsn")),
                # libpq counts whole seconds, and at least 2 of them.
                connect_timeout=max(2, math.ceil(target.timeout)),
                options=f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
                application_name="tradewatch-health",
            ) as conn:
                with conn.cursor() as cursor:
                    cursor.execute(query.encode())
                    row = cursor.fetchone() if cursor.description else None
                version = conn.info.server_version
        except psycopg.errors.QueryCanceled:
            return CheckResult(
                Status.CRITICAL, latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"query did not finish within {target.timeout:g} s"],
            )  # fmt: skip
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return CheckResult(
                Status.CRITICAL, latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"PostgreSQL: {message}"[:300]],
            )  # fmt: skip
        latency = elapsed_ms(started, time.perf_counter())
        details = {"server_version": version, "first_value": None if row is None else str(row[0])}
        if limit is not None and latency > limit:
            return CheckResult(
                Status.DEGRADED, latency_ms=latency,
                warnings=[f"PostgreSQL answered in {latency:.0f} ms (limit {limit:.0f} ms)"],
                details=details,
            )  # fmt: skip
        return CheckResult(Status.HEALTHY, latency_ms=latency, details=details)
