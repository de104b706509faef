"""The database `make run` migrates: created when the server allows, else one clear line."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from monitoring_site.launch_database import DatabaseSetupError, ensure_database
from tests.processes import BASE_DIR, free_port, process_environment


def server() -> str:
    """`host:port` of the PostgreSQL server the tests use."""
    db = settings.DATABASES["default"]
    return f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"


def server_url(database: str, user: str = "") -> str:
    """A URL of `database` on that server, as the tests' role or `user` (no password)."""
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") and not user else ""
    return f"postgres://{user or db.get('USER') or 'postgres'}{password}@{server()}/{database}"


def admin(statement: sql.Composed) -> None:
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


def database_exists(name: str) -> bool:
    with psycopg.connect(server_url("postgres")) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


@pytest.fixture
def fresh_name() -> Iterator[str]:
    """A database name nobody uses; the database is dropped afterwards if it was made."""
    name = f"test_tw_launch_{secrets.token_hex(4)}"
    yield name
    admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def role_without_createdb() -> Iterator[str]:
    """A role that may log in but not create databases (dropped afterwards)."""
    role = f"tw_no_createdb_{secrets.token_hex(4)}"
    admin(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    yield role
    admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def launcher_prepare(database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = process_environment(
        DATABASE_URL=database_url,
        STATIC_ROOT=str(tmp_path / "static"),
        TRADEWATCH_ADMIN_PASSWORD="a-test-password",
    )
    return subprocess.run(
        [sys.executable, "-m", "monitoring_site.launcher", "prepare"],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_it_creates_a_database_named_in_database_url_and_migrates_it(
    fresh_name: str, tmp_path: Path
) -> None:
    result = launcher_prepare(server_url(fresh_name), tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Created PostgreSQL database {fresh_name!r}" in result.stdout
    with psycopg.connect(server_url(fresh_name)) as conn:
        migrated = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
    assert migrated is not None
    assert migrated[0] > 0


def test_it_says_what_to_run_when_the_role_may_not_create_it(
    fresh_name: str, role_without_createdb: str, tmp_path: Path
) -> None:
    result = launcher_prepare(server_url(fresh_name, user=role_without_createdb), tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    [line] = result.stderr.splitlines()
    host, port = server().rsplit(":", 1)
    assert line.startswith(
        f"PostgreSQL database {fresh_name!r} does not exist on {server()} and role "
        f"{role_without_createdb!r} may not create it: run `createdb -h {host} -p {port} "
        f"-O {role_without_createdb} {fresh_name}` as a role that may"
    )
    assert f"ALTER ROLE {role_without_createdb} CREATEDB" in line
    assert not database_exists(fresh_name)


def test_it_leaves_an_existing_database_and_other_engines_alone(fresh_name: str) -> None:
    assert ensure_database(server_url(fresh_name)) is not None
    assert ensure_database(server_url(fresh_name)) is None
    assert ensure_database("sqlite:///var/tradewatch.sqlite3") is None


def test_it_names_a_server_that_does_not_answer(fresh_name: str) -> None:
    port = free_port()

    with pytest.raises(DatabaseSetupError) as error:
        ensure_database(f"postgres://postgres@127.0.0.1:{port}/{fresh_name}")

    message = str(error.value)
    assert message.startswith(f"Cannot connect to PostgreSQL database {fresh_name!r} on ")
    assert f"127.0.0.1:{port} (DATABASE_URL): " in message
    assert "Connection refused" in message
    assert "\n" not in message
