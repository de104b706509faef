"""Run Tradewatch: choose the database and broker, prepare, then run web, worker and beat.

`python -m monitoring_site.launcher` (what `make run` calls) does it all in the
foreground; `prepare`, `web`, `worker` and `beat` run one part each, and are what the
containers of docker-compose.yml run, so both ways start the same commands.

The whole (`make run`) is meant to be run for real: it fills in safe defaults the
environment leaves unset (DEBUG off, its own secret keys, loopback only; see
`monitoring_site.launch_defaults`), and restarts a process that crashes (with backoff,
`monitoring_site.supervision`) instead of stopping the others with it.

This module decides the environment before Django reads its settings, so it imports
nothing of Django at the top.
"""

from __future__ import annotations

import argparse
import contextlib
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

from monitoring_site.launch_database import DatabaseSetupError, ensure_database
from monitoring_site.launch_defaults import (
    SECRET_NAMES,
    BindAddressError,
    SecretsFileError,
    listening_line,
    load_or_create_secrets,
    run_defaults,
)
from monitoring_site.supervision import GiveUp, RestartPolicy, describe_exit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tradewatch"
LOCAL_BROKER_URL = "redis://127.0.0.1:6379/0"
# SECRET_KEY and TRADEWATCH_ENCRYPTION_KEY of `make run`, unless the environment has them.
SECRETS_FILE = VAR_DIR / "secrets" / "tradewatch.env"
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


def command_line_environment(
    environ: Mapping[str, str], probe: Callable[[str, int], bool] = port_answers
) -> dict[str, str]:
    """What `manage.py` adds to its environment, so its commands work on what `make run`
    serves: the same database and broker (chosen the same way, silently), and the
    secrets `make run` generated, read from their file when it exists (never created
    here: a command run before the first `make run` keeps the development defaults).

    Without it, `manage.py tradewatch ...` beside an embedded `make run` would look for
    PostgreSQL, and a channel secret it stored would be encrypted with another key.
    """
    added: dict[str, str] = {}
    if not (environ.get("DATABASE_URL") and environ.get("CELERY_BROKER_URL")):
        backends = choose_backends(environ, probe)
        added["DATABASE_URL"] = backends.database_url
        added["CELERY_BROKER_URL"] = backends.broker_url
    missing = [name for name in SECRET_NAMES if not environ.get(name)]
    secrets_file = Path(environ.get("TRADEWATCH_SECRETS_FILE") or SECRETS_FILE)
    if missing and secrets_file.exists():
        values, _ = load_or_create_secrets(secrets_file)
        added.update({name: values[name] for name in missing})
    return added


def resolve(command: list[str]) -> list[str]:
    return [sys.executable if part == "python" else part for part in command]


def prepare(env: Mapping[str, str]) -> None:
    """Create the database if missing, migrate, add the first admin, collect static files."""
    try:
        created = ensure_database(env["DATABASE_URL"])
    except DatabaseSetupError as exc:
        raise SystemExit(str(exc)) from None
    if created:
        print(created, flush=True)
    for command in PREPARE_COMMANDS:
        completed = subprocess.run(resolve(command), env=dict(env), cwd=BASE_DIR, check=False)
        if completed.returncode != 0:
            raise SystemExit(
                f"`{' '.join(command)}` failed (exit {completed.returncode}); see above."
            )


@dataclass
class Child:
    """One supervised process: its name, its policy, and its current run."""

    name: str
    command: list[str]
    policy: RestartPolicy
    process: subprocess.Popen[bytes] | None = None
    # Monotonic time at which a crashed child is started again (None: not waiting).
    restart_at: float | None = None


def restart_policy(env: Mapping[str, str]) -> RestartPolicy:
    """Each child's restart policy, tunable from the environment."""
    try:
        return RestartPolicy(
            limit=int(env.get("TRADEWATCH_RESTART_LIMIT", "5")),
            window=float(env.get("TRADEWATCH_RESTART_WINDOW_SECONDS", "300")),
            base_delay=1.0,
            max_delay=30.0,
        )
    except ValueError as exc:
        raise SystemExit(
            "TRADEWATCH_RESTART_LIMIT must be a whole number of at least 1 and "
            f"TRADEWATCH_RESTART_WINDOW_SECONDS a positive number of seconds ({exc})."
        ) from exc


class Supervisor:
    """Runs web, worker and beat; restarts one that crashes, stops all on Ctrl-C/SIGTERM.

    A child that exits on its own is restarted after the delay its `RestartPolicy`
    gives (doubling with each recent crash); when one keeps crashing the policy gives
    up and everything stops with exit code 1, so whatever runs `make run` sees it.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        commands: Mapping[str, list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = dict(env)
        self.clock = clock
        self.children = {
            name: Child(name, command, restart_policy(env))
            for name, command in (commands or default_commands(env)).items()
        }
        self.stopping = False

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {c.name: c.process for c in self.children.values() if c.process is not None}

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        # Own session: the terminal's Ctrl-C reaches only us, we stop the children in
        # order with SIGTERM (graceful for the web server and celery alike), and a crashed
        # child's own children can be found and cleared as its process group.
        child.process = subprocess.Popen(
            resolve(child.command), env=self.env, cwd=BASE_DIR, start_new_session=True
        )
        child.restart_at = None
        print(f"started {child.name} (pid {child.process.pid})", flush=True)

    def request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def wait(self) -> int:
        previous = {
            signum: signal.signal(signum, self.request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        exit_code = 0
        try:
            while not self.stopping:
                if not self.check_children():
                    exit_code = 1
                    break
                time.sleep(0.2)
            self.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return exit_code

    def check_children(self) -> bool:
        """Handle exits and due restarts once; False when a child keeps crashing."""
        now = self.clock()
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                continue
            process = child.process
            if process is None or not _has_exited(process):
                continue
            # Cleared while the dead leader is not yet reaped: its pid, the group's id,
            # cannot have been taken by another process.
            _clear_process_group(process.pid)
            process.wait()
            how = describe_exit(process.returncode)
            decision = child.policy.crashed(now)
            if isinstance(decision, GiveUp):
                print(
                    f"{child.name} (pid {process.pid}) exited ({how}); it crashed "
                    f"{decision.crashes} times within {decision.window:g} s: giving up, "
                    "stopping the others.",
                    flush=True,
                )
                return False
            print(
                f"{child.name} (pid {process.pid}) exited ({how}); restarting it in "
                f"{decision.delay:g} s (crash {decision.crashes} within "
                f"{child.policy.window:g} s; at {child.policy.limit} the launcher gives up).",
                flush=True,
            )
            child.restart_at = now + decision.delay
        return True

    def stop(self) -> None:
        print("stopping web, worker and beat...", flush=True)
        running = {name: p for name, p in self.processes.items() if p.returncode is None}
        for process in running.values():
            if not _has_exited(process):  # (Popen.send_signal would reap it)
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, process in running.items():
            while not _has_exited(process) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _has_exited(process):
                print(f"{name} did not stop in {STOP_TIMEOUT_SECONDS}s; killing it.", flush=True)
                process.kill()
            _clear_process_group(process.pid)
            process.wait()
        print("stopped.", flush=True)


def _has_exited(process: subprocess.Popen[bytes]) -> bool:
    """True once the process has ended, without reaping it (its pid stays reserved)."""
    if process.returncode is not None:
        return True
    try:
        status = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere
        process.poll()
        return True
    return status is not None


def _clear_process_group(pgid: int) -> None:
    """Kill what a dead child left behind (web server workers, Celery pool processes).

    Left running they would hold the port or the queue's messages the restarted child
    needs. Called before the leader is reaped, so the group's id is still ours.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def default_commands(env: Mapping[str, str]) -> dict[str, list[str]]:
    # One worker consuming every queue, whatever TRADEWATCH_WORKER_QUEUES says (that
    # variable splits the queues between the containers of docker-compose.yml).
    return {name: list(command) for name, command in PROCESS_COMMANDS.items()}


def configured_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for every process, with the chosen backends filled in."""
    backends = choose_backends(environ)
    print(backends.describe(), flush=True)
    if backends.embedded:
        print(
            "Embedded mode is for trying Tradewatch out; use PostgreSQL and Redis for real money."
        )
        VAR_DIR.mkdir(exist_ok=True)
    env = dict(environ)
    env["DATABASE_URL"] = backends.database_url
    env["CELERY_BROKER_URL"] = backends.broker_url
    env.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    return env


def with_run_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the safe defaults of `make run` (`monitoring_site.launch_defaults`)."""
    secrets_file = Path(env.get("TRADEWATCH_SECRETS_FILE") or SECRETS_FILE)
    added, notes = run_defaults(env, secrets_file, terminal=sys.stdout.isatty())
    for note in notes:
        print(note, flush=True)
    return {**env, **added}


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
    try:
        env = with_run_defaults(env)
        # Checked before anything starts: a web server that cannot bind would only be
        # restarted until the launcher gives up.
        listening = listening_line(env["TRADEWATCH_BIND"])
    except (SecretsFileError, BindAddressError) as exc:
        raise SystemExit(str(exc)) from exc
    prepare(env)
    supervisor = Supervisor(env)
    supervisor.start()
    print(f"{listening}  (Ctrl-C stops it)", flush=True)
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
