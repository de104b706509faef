"""`make run`: backend choice, and the whole stack in embedded mode as a real process tree."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from celery import Celery

from monitoring_site import launcher
from tests.processes import BASE_DIR, free_port, wait_until


def test_it_uses_the_environment_when_urls_are_set() -> None:
    backends = launcher.choose_backends(
        {"DATABASE_URL": "postgres://u:secret@db/tw", "CELERY_BROKER_URL": "redis://r:6379/2"},
        probe=lambda host, port: False,
    )

    assert backends.database_url == "postgres://u:secret@db/tw"
    assert backends.broker_url == "redis://r:6379/2"
    assert not backends.embedded
    assert "secret" not in backends.describe()
    assert "from DATABASE_URL" in backends.describe()


def test_it_uses_local_postgresql_and_redis_when_they_answer() -> None:
    asked: list[tuple[str, int]] = []

    def probe(host: str, port: int) -> bool:
        asked.append((host, port))
        return True

    backends = launcher.choose_backends({}, probe=probe)

    assert asked == [("127.0.0.1", 5432), ("127.0.0.1", 6379)]
    assert backends.database_url == launcher.LOCAL_DATABASE_URL
    assert backends.broker_url == launcher.LOCAL_BROKER_URL
    assert "PostgreSQL answers" in backends.describe()


def test_it_falls_back_to_the_embedded_mode_when_nothing_answers() -> None:
    backends = launcher.choose_backends({}, probe=lambda host, port: False)

    assert backends.database_url.startswith("sqlite:///")
    assert backends.database_url.endswith("var/tradewatch.sqlite3")
    assert backends.broker_url == "filesystem://"
    assert backends.embedded
    assert "no PostgreSQL on 127.0.0.1:5432" in backends.describe()


def test_it_chooses_each_backend_on_its_own() -> None:
    backends = launcher.choose_backends({}, probe=lambda host, port: port == 5432)

    assert backends.database_url == launcher.LOCAL_DATABASE_URL
    assert backends.broker_url == "filesystem://"


def test_it_finds_real_servers_with_the_default_probe() -> None:
    assert launcher.port_answers("127.0.0.1", 5432)
    assert not launcher.port_answers("127.0.0.1", free_port())


def _get_json(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return dict(json.load(response))
    except OSError:
        return None


@pytest.mark.slow
def test_it_runs_web_worker_and_beat_in_embedded_mode_and_stops_on_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    database = tmp_path / "tradewatch.sqlite3"
    broker = tmp_path / "broker"
    results = tmp_path / "results"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{database}",
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_FOLDER": str(broker),
        "CELERY_RESULT_BACKEND": f"file://{results}",
        "STATIC_ROOT": str(tmp_path / "static"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "TRADEWATCH_SECRETS_FILE": str(tmp_path / "secrets" / "tradewatch.env"),
        "TRADEWATCH_BIND": f"127.0.0.1:{port}",
        "TRADEWATCH_ADMIN_PASSWORD": "a-test-password",
        "WEB_CONCURRENCY": "1",
    }
    output = tmp_path / "launcher.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitoring_site.launcher"],
            env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # Web: ready, on the embedded database and broker.
        assert wait_until(lambda: _get_json(f"http://127.0.0.1:{port}/readyz"), 90), (
            output.read_text()
        )
        ready = _get_json(f"http://127.0.0.1:{port}/readyz")
        assert ready is not None
        assert ready["status"] == "ready"
        checks = ready["checks"]
        assert isinstance(checks, dict)
        assert checks["database"]["vendor"] == "sqlite"
        assert checks["broker"]["transport"] == "filesystem"

        # A task sent through the file broker comes back from the worker.
        # Celery prefers CELERY_BROKER_URL (the test suite's Redis) to any argument.
        monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
        client = Celery(broker="filesystem://", backend=f"file://{results}")
        client.conf.broker_transport_options = {
            "data_folder_in": str(broker),
            "data_folder_out": str(broker),
            "control_folder": str(broker / "control"),
        }
        assert (
            client.send_task("monitoring_site.tasks.ping", queue="default").get(timeout=60)
            == "pong"
        )

        # Beat scheduled its tick, the worker ran it against the SQLite database.
        def beat_ticked() -> bool:
            with sqlite3.connect(database) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM health_processheartbeat WHERE role = 'beat'"
                ).fetchone()
            return bool(rows[0])

        assert wait_until(beat_ticked, 60), output.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    log_text = output.read_text()
    assert code == 0, log_text
    assert "embedded SQLite" not in log_text  # chosen from the environment, and said so
    assert "from DATABASE_URL" in log_text
    assert "Created administrator 'admin'" in log_text
    assert "stopped." in log_text
    assert _get_json(f"http://127.0.0.1:{port}/healthz") is None  # web is gone
