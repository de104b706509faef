"""Run Tradewatch: choose the database and broker, prepare, then run web, worker and beat.

`python -m monitoring_site.launcher` (what `make run` calls) does it all in the
foreground; `prepare`, `web`, `worker` and `beat` run one part each, and are what the
containers of docker-compose.yml run, so both ways start the same commands.

This module decides the environment before Django reads its settings, so it imports
nothing of Django at the top.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tradewatch"
LOCAL_BROKER_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_DATABASE_URL = f"sqlite:///{VAR_DIR / 'tradewatch.sqlite3'}"
EMBEDDED_BROKER_URL = "filesystem://"

# Every queue settings.CELERY_TASK_ROUTES sends work to, and the default one. `make run`
# starts one worker consuming them all; docker-compose.yml one service per queue (set
# with TRADEWATCH_WORKER_QUEUES), so a flood on one never starves another.
QUEUES = "default,ingest,delivery,health"

# The commands of each process; `python` is replaced by the running interpreter.
# Granian: requests are read on an event loop, so slow clients hold no Python thread
# (see monitoring_site/webserver.py for why, and its settings).
WEB_COMMAND = ["python", "-m", "monitoring_site.webserver"]
WORKER_COMMAND = [
    "python",
    "-m",
    "celery",
    "-A",
    "monitoring_site",
    "worker",
    "-Q",
    QUEUES,
    "--loglevel",
    "INFO",
]
BEAT_COMMAND = ["python", "-m", "celery", "-A", "monitoring_site", "beat", "--loglevel", "INFO"]
PREPARE_COMMANDS = [
    ["python", "manage.py", "migrate", "--noinput"],
    ["python", "manage.py", "ensure_admin"],
    ["python", "manage.py", "collectstatic", "--noinput", "-v", "0"],
]
PROCESS_COMMANDS = {"web": WEB_COMMAND, "worker": WORKER_COMMAND, "beat": BEAT_COMMAND}

STOP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Backends:
    """Where Tradewatch keeps its data and queues its work, and why."""

    database_url: str
    broker_url: str
    database_reason: str
    broker_reason: str

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite") or self.broker_url.startswith("filesystem")

    def describe(self) -> str:
        return (
            f"database: {_redact(self.database_url)} ({self.database_reason})\n"
            f"broker:   {_redact(self.broker_url)} ({self.broker_reason})"
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def choose_backends(
    environ: Mapping[str, str], probe: Callable[[str, int], bool] = port_answers
) -> Backends:
    """Pick the database and broker: the environment's, else local servers, else embedded."""
    if environ.get("DATABASE_URL"):
        database_url, database_reason = environ["DATABASE_URL"], "from DATABASE_URL"
    elif probe("127.0.0.1", 5432):
        database_url, database_reason = LOCAL_DATABASE_URL, "PostgreSQL answers on 127.0.0.1:5432"
    else:
        database_url = EMBEDDED_DATABASE_URL
        database_reason = "embedded SQLite: no DATABASE_URL and no PostgreSQL on 127.0.0.1:5432"
    if environ.get("CELERY_BROKER_URL"):
        broker_url, broker_reason = environ["CELERY_BROKER_URL"], "from CELERY_BROKER_URL"
    elif probe("127.0.0.1", 6379):
        broker_url, broker_reason = LOCAL_BROKER_URL, "Redis answers on 127.0.0.1:6379"
    else:
        broker_url = EMBEDDED_BROKER_URL
        broker_reason = "embedded file broker: no CELERY_BROKER_URL and no Redis on 127.0.0.1:6379"
    return Backends(database_url, broker_url, database_reason, broker_reason)


def ensure_local_database(database_url: str) -> None:
    """Create the PostgreSQL database named in the URL if it does not exist yet."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    conninfo = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"Created PostgreSQL database {name!r}.", flush=True)


def resolve(command: list[str]) -> list[str]:
    return [sys.executable if part == "python" else part for part in command]


def prepare(env: Mapping[str, str]) -> None:
    """Migrate, create the first administrator, collect static files."""
    for command in PREPARE_COMMANDS:
        completed = subprocess.run(resolve(command), env=dict(env), cwd=BASE_DIR, check=False)
        if completed.returncode != 0:
            raise SystemExit(
                f"`{' '.join(command)}` failed (exit {completed.returncode}); see above."
            )


class Supervisor:
    """Runs web, worker and beat; stops all of them when one dies or on Ctrl-C."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self) -> None:
        for name, command in PROCESS_COMMANDS.items():
            # Own session: the terminal's Ctrl-C reaches only us, and we stop the
            # children in order with SIGTERM (graceful for gunicorn and celery alike).
            self.processes[name] = subprocess.Popen(
                resolve(command), env=self.env, cwd=BASE_DIR, start_new_session=True
            )
            print(f"started {name} (pid {self.processes[name].pid})", flush=True)

    def request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def wait(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        exit_code = 0
        while not self.stopping:
            for name, process in self.processes.items():
                code = process.poll()
                if code is not None:
                    print(f"{name} exited with code {code}; stopping the others.", flush=True)
                    exit_code = code or 1
                    self.stopping = True
                    break
            time.sleep(0.2)
        self.stop()
        return exit_code

    def stop(self) -> None:
        print("stopping web, worker and beat...", flush=True)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {STOP_TIMEOUT_SECONDS}s; killing it.", flush=True)
                process.kill()
                process.wait()
        print("stopped.", flush=True)


def configured_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for every process, with the chosen backends filled in."""
    backends = choose_backends(environ)
    print(backends.describe(), flush=True)
    if backends.embedded:
        print(
            "Embedded mode is for trying Tradewatch out; use PostgreSQL and Redis for real money."
        )
        VAR_DIR.mkdir(exist_ok=True)
    if backends.database_url == LOCAL_DATABASE_URL:
        ensure_local_database(backends.database_url)
    env = dict(environ)
    env["DATABASE_URL"] = backends.database_url
    env["CELERY_BROKER_URL"] = backends.broker_url
    env.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    return env


def worker_command(env: Mapping[str, str]) -> list[str]:
    """The worker's command: its queues and pool size from the environment, if given."""
    command = list(WORKER_COMMAND)
    queues = env.get("TRADEWATCH_WORKER_QUEUES", "").strip()
    if queues:
        command[command.index(QUEUES)] = queues
        # Named after its queues, so `celery inspect` and the self-check tell them apart.
        command += ["--hostname", f"{queues.replace(',', '+')}@%h"]
    concurrency = env.get("TRADEWATCH_WORKER_CONCURRENCY", "").strip()
    if concurrency:
        command += ["--concurrency", concurrency]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "part",
        nargs="?",
        default="all",
        choices=["all", "prepare", *PROCESS_COMMANDS],
        help="all (default): prepare, then run web, worker and beat together",
    )
    args = parser.parse_args(argv)
    env = configured_environment(os.environ)
    if args.part == "prepare":
        prepare(env)
        return 0
    if args.part in PROCESS_COMMANDS:
        # Replace this process, so a container's signals reach the server directly.
        parts = worker_command(env) if args.part == "worker" else PROCESS_COMMANDS[args.part]
        command = resolve(parts)
        os.chdir(BASE_DIR)
        os.execvpe(command[0], command, env)  # noqa: S606 (our own server)
    prepare(env)
    supervisor = Supervisor(env)
    supervisor.start()
    print("Tradewatch runs at http://127.0.0.1:8000/admin/  (Ctrl-C stops it)", flush=True)
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
