"""Real processes for tests: Celery workers and servers started as the user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_database_url() -> str:
    """The URL of the database the test run created, for processes the test starts."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def process_environment(**overrides: str) -> dict[str, str]:
    """The environment of a Tradewatch process that shares this test's database and broker."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "monitoring_site.settings",
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            "PYTHONUNBUFFERED": "1",
            # A worker's self-check alerts about the queues no test worker consumes:
            # only the tests of self-monitoring want those alerts (and switch it on).
            "TRADEWATCH_SELF_CHECK_SECONDS": "0",
        }
    )
    env.update(overrides)
    return env


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """Stop a process politely (SIGTERM), then firmly; return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def celery_worker(
    env: Mapping[str, str],
    *,
    queues: str = "default,ingest,delivery,health",
    name: str = "test",
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process consuming the given queues (its log to `log_path`)."""
    command = [
        sys.executable, "-m", "celery", "-A", "monitoring_site", "worker",
        "-Q", queues, "-n", f"{name}-{os.getpid()}@%h", "--concurrency", "2",
        "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    log = log_path.open("wb") if log_path is not None else None
    process = subprocess.Popen(
        command, env=dict(env), cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT if log else None
    )
    try:
        yield process
    finally:
        stop(process)
        if log is not None:
            log.close()


def ctrl_c_default() -> None:
    """For `preexec_fn`: the child starts with SIGINT at its default, and not blocked.

    A suite started in the background (a shell's `command &`) runs with SIGINT ignored,
    and children inherit that (Python then installs no KeyboardInterrupt handler); a
    thread that blocked signals passes its mask on to what it starts. Either way a
    process the test stops with Ctrl-C would never hear it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def wait_until(predicate: object, timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds passed."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@contextmanager
def web_server(
    env: Mapping[str, str], port: int, *, output: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Tradewatch's web process (as `make run` starts it) on 127.0.0.1:`port`,
    its stdout and stderr into `output` when given."""
    process = start_web_server(env, port, output=output)
    try:
        yield process
    finally:
        stop(process)


def start_web_server(
    env: Mapping[str, str], port: int, *, output: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Start the web process and wait until /healthz answers."""
    import urllib.request

    server_env = {**env, "TRADEWATCH_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitoring_site.launcher", "web"],
        env=server_env,
        cwd=BASE_DIR,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    if not wait_until(answers, 60):
        stop(process)
        raise RuntimeError("the web server did not start")
    return process


def broker_purge() -> None:
    """Empty every Tradewatch queue on the test broker (`control.purge` empties only the
    default one), so a test's workers never chew through an earlier test's messages."""
    from celery import current_app

    with current_app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ("default", "ingest", "delivery", "health", "celery"):
            try:
                channel.queue_purge(queue)  # type: ignore[attr-defined]
            except Exception:  # noqa: S112 (a queue never declared has nothing to purge)
                continue
