"""The databases, from the environment: the primary, and optionally a read replica.

Read by settings.py before Django is set up, so this module imports nothing of Django's
database layer. Where reads go at run time is `monitoring_site.database_routing`.
"""

from __future__ import annotations

from typing import Any

import environ

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tradewatch"
# The alias of the streaming replica, when DATABASE_REPLICA_URL names one.
REPLICA = "replica"


def databases_from_environment(env: environ.Env) -> dict[str, dict[str, Any]]:
    """`DATABASES`: the primary from DATABASE_URL; a replica from DATABASE_REPLICA_URL."""
    primary = env.db_url("DATABASE_URL", default=DEFAULT_DATABASE_URL)
    databases = {"default": primary}
    if primary["ENGINE"] == "django.db.backends.postgresql":
        _postgresql(env, primary)
    elif primary["ENGINE"] == "django.db.backends.sqlite3":
        # The embedded mode runs web, worker and beat on one file: WAL lets readers work
        # while one process writes, IMMEDIATE transactions avoid lock-upgrade deadlocks.
        primary.setdefault("OPTIONS", {}).update(
            {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    replica_url: str = env.str("DATABASE_REPLICA_URL", default="")
    if replica_url:
        replica = env.db_url_config(replica_url)
        if replica["ENGINE"] != "django.db.backends.postgresql" or (
            primary["ENGINE"] != "django.db.backends.postgresql"
        ):
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "DATABASE_REPLICA_URL needs PostgreSQL, as DATABASE_URL: a streaming replica "
                "of the primary."
            )
        _postgresql(env, replica)
        # Tests never create a database for it: in a test run it is the primary itself.
        replica["TEST"] = {"MIRROR": "default"}
        databases[REPLICA] = replica
    return databases


def _postgresql(env: environ.Env, database: dict[str, Any]) -> None:
    # Keep connections between requests: opening one per request costs more than the
    # whole ingest of a 100-sample batch.
    database.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    database["CONN_HEALTH_CHECKS"] = True
    database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)


def database_routers(databases: dict[str, dict[str, Any]]) -> list[str]:
    """`DATABASE_ROUTERS`: the replica's router when there is a replica; else none."""
    return ["monitoring_site.database_routing.ReplicaRouter"] if REPLICA in databases else []
