"""The PostgreSQL database `make run` migrates: created when missing, or one line saying why not.

A first run names a database that does not exist yet, in `DATABASE_URL` or the default
`tradewatch`. Tradewatch creates it when the server lets its role do so; otherwise it
stops with one line naming the database, the server and the role, and what to run,
rather than the driver's traceback from the middle of `migrate`.

The URL is read exactly as the settings read it (django-environ), so the database
checked here is the one Django then connects to. Nothing of Django's settings is
imported: this runs before them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

# Where a role can connect to ask whether a database exists and to create it.
MAINTENANCE_DATABASES = ("postgres", "template1")
# Django's own OPTIONS keys, which are not libpq connection parameters.
_DJANGO_ONLY_OPTIONS = frozenset({"isolation_level", "server_side_binding", "pool", "assume_role"})
_POSTGRES_ENGINES = ("postgresql", "postgis")
CONNECT_TIMEOUT_SECONDS = 5


class DatabaseSetupError(RuntimeError):
    """The database cannot be reached or created; the message is one line for a person."""


@dataclass(frozen=True)
class PostgresTarget:
    """The database a URL names and how to connect to its server."""

    name: str
    user: str
    host: str
    port: str
    parameters: dict[str, Any]

    @property
    def server(self) -> str:
        host = self.host or "the local socket"
        return f"{host}:{self.port}" if self.port else host

    def connect(self, database: str) -> Any:
        import psycopg

        return psycopg.connect(
            dbname=database, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
            **self.parameters,
        )  # fmt: skip


def postgres_target(database_url: str) -> PostgresTarget | None:
    """The PostgreSQL database of `database_url`; None for another engine (SQLite)."""
    import environ

    config = environ.Env.db_url_config(database_url)
    if not str(config.get("ENGINE", "")).endswith(_POSTGRES_ENGINES):
        return None
    parameters: dict[str, Any] = {
        key: value
        for key, value in (config.get("OPTIONS") or {}).items()
        if key not in _DJANGO_ONLY_OPTIONS
    }
    for key, setting in (("user", "USER"), ("password", "PASSWORD"), ("host", "HOST")):
        if config.get(setting):
            parameters[key] = config[setting]
    if config.get("PORT"):
        parameters["port"] = str(config["PORT"])
    return PostgresTarget(
        name=str(config["NAME"]),
        user=str(config.get("USER") or ""),
        host=str(config.get("HOST") or ""),
        port=str(config.get("PORT") or ""),
        parameters=parameters,
    )


def _one_line(error: Exception) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text.removeprefix("connection failed: ")


def ensure_database(database_url: str) -> str | None:
    """Create the PostgreSQL database of `database_url` if it does not exist yet.

    Returns a line to print when it was created, None when there was nothing to do
    (it exists, or the URL is not PostgreSQL's). Raises `DatabaseSetupError` when the
    server cannot be reached or the role may not create the database.
    """
    import psycopg

    target = postgres_target(database_url)
    if target is None:
        return None
    try:
        # The usual case, and the only one a role without access to a maintenance
        # database can be checked in: the database is there.
        with target.connect(target.name):
            return None
    except psycopg.OperationalError as error:
        reason = error
    for maintenance in MAINTENANCE_DATABASES:
        try:
            with target.connect(maintenance) as conn:
                return _create_if_missing(conn, target, reason)
        except psycopg.OperationalError:
            continue
    # Neither the database nor the server's maintenance databases let us in: the
    # server is away, or the credentials are wrong; libpq's reason says which.
    raise DatabaseSetupError(
        f"Cannot connect to PostgreSQL database {target.name!r} on {target.server} "
        f"(DATABASE_URL): {_one_line(reason)}"
    )


def _create_if_missing(conn: Any, target: PostgresTarget, reason: Exception) -> str | None:
    import psycopg
    from psycopg import sql

    role = conn.info.user
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target.name]).fetchone()
    if exists:
        # There, yet it refused us (no CONNECT right, too many connections...).
        raise DatabaseSetupError(
            f"Cannot connect to PostgreSQL database {target.name!r} on {target.server} as "
            f"{role!r} (DATABASE_URL): {_one_line(reason)}"
        )
    try:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.name)))
    except psycopg.errors.DuplicateDatabase:
        return None  # another launcher created it meanwhile
    except psycopg.errors.InsufficientPrivilege:
        raise DatabaseSetupError(_cannot_create(target, role)) from None
    except psycopg.Error as error:
        raise DatabaseSetupError(
            f"PostgreSQL database {target.name!r} does not exist on {target.server} and "
            f"creating it failed: {_one_line(error)}"
        ) from None
    return f"Created PostgreSQL database {target.name!r} on {target.server}."


def _cannot_create(target: PostgresTarget, role: str) -> str:
    createdb = ["createdb"]
    if target.host:
        createdb += ["-h", target.host]
    if target.port:
        createdb += ["-p", target.port]
    createdb += ["-O", role, target.name]
    return (
        f"PostgreSQL database {target.name!r} does not exist on {target.server} and role "
        f"{role!r} may not create it: run `{shlex.join(createdb)}` as a role that may "
        f"(a superuser), or `ALTER ROLE {_identifier(role)} CREATEDB`, or point DATABASE_URL "
        "at an existing database; then start Tradewatch again."
    )


def _identifier(name: str) -> str:
    """`name` as SQL would need it typed (quoted unless a plain lower-case identifier)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
