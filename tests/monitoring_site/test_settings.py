"""Production settings pass `check --deploy`; the development key is refused there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.utils.crypto import get_random_string

from tests.processes import BASE_DIR

PRODUCTION = {
    "DEBUG": "False",
    "ALLOWED_HOSTS": "tradewatch.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/tradewatch",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_SETTINGS_MODULE": "monitoring_site.settings",
    "PATH": "/usr/bin:/bin",
    "TRADEWATCH_ENCRYPTION_KEY": "3q2jS1QnYlqVvU8o0m2n9y6z0rjA7bGx6HqzJ0m9c0Y=",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_it_passes_check_deploy_with_production_settings() -> None:
    env = {**PRODUCTION, "SECRET_KEY": get_random_string(64)}

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off() -> None:
    result = manage("check", env=PRODUCTION)

    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment when DEBUG is off." in result.stderr


def test_it_warns_about_the_embedded_mode_in_production(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "SECRET_KEY": get_random_string(64),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'tradewatch.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_FOLDER": str(tmp_path / "broker"),
    }

    result = manage("check", "--deploy", env=env)

    assert "tradewatch.W001" in result.stderr + result.stdout
    assert "tradewatch.W002" in result.stderr + result.stdout


def test_it_refuses_production_without_an_encryption_key() -> None:
    env = {**PRODUCTION, "SECRET_KEY": get_random_string(64)}
    del env["TRADEWATCH_ENCRYPTION_KEY"]

    result = manage("check", "--deploy", env=env)

    assert result.returncode != 0
    assert "tradewatch.E003" in result.stderr + result.stdout


def test_it_passes_check_deploy_with_a_read_replica() -> None:
    env = {
        **PRODUCTION,
        "SECRET_KEY": get_random_string(64),
        "DATABASE_REPLICA_URL": "postgres://postgres@127.0.0.1:5442/tradewatch",
    }

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr


def test_it_refuses_a_read_replica_that_is_not_postgresql(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "SECRET_KEY": get_random_string(64),
        "DATABASE_REPLICA_URL": f"sqlite:///{tmp_path / 'copy.sqlite3'}",
    }

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "DATABASE_REPLICA_URL needs PostgreSQL" in result.stderr
