"""Helpers for benchmarks that start Tradewatch's own processes on loopback.

Everything here is bounded in time: waiting for a port, a log line or a process to stop
gives up after a deadline, and a process that ignores SIGTERM is killed with its whole
process group (it runs in a session of its own, so that group holds only its children).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark itself dies (Linux only)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """One child process in its own session, its output in a log file."""

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=REPO_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_log(self, needle: str, timeout: float) -> None:
        """Wait until `needle` appears in the log; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if needle in self.log_path.read_text(errors="replace"):
                    return
            except OSError:
                pass
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name}: no {needle!r} in its log after {timeout}s:\n{self.log_tail()}"
        )

    def wait_for_http(self, url: str, timeout: float) -> None:
        """Wait until GET `url` answers 200; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name}: {url} not ready after {timeout}s ({last_error}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the process group, then SIGKILL after `timeout` seconds."""
        process = self.process
        if process is None or self.stopped:
            return
        self.stopped = True
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} did not stop in {timeout}s; killing it", flush=True)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Children that outlived their leader (same group id as its pid): end them too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def run_checked(command: Sequence[str], env: Mapping[str, str], timeout: float, what: str) -> str:
    """Run a command to completion (bounded); return its stdout, fail with its output."""
    completed = subprocess.run(
        list(command),
        env=dict(env),
        cwd=REPO_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {completed.returncode}):\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
    return completed.stdout


def postgres_conninfo(host: str, port: int, user: str, dbname: str) -> str:
    return f"host={host} port={port} user={user} dbname={dbname} connect_timeout=5"


def create_database(admin_conninfo: str, name: str) -> None:
    """(Re)create database `name`: a leftover of an interrupted run is dropped first."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_conninfo: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def redis_db_size(host: str, port: int, db: int) -> int:
    import redis

    client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def redis_clients(host: str, port: int, db: int) -> int:
    """How many other connections have database `db` selected right now."""
    import redis

    client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
    try:
        me = client.client_id()
        return sum(1 for c in client.client_list() if int(c["db"]) == db and int(c["id"]) != me)
    finally:
        client.close()


def redis_flush(host: str, port: int, db: int) -> bool:
    """Empty database `db`, unless somebody else is connected to it (then say so)."""
    import redis

    if redis_clients(host, port, db):
        print(f"Redis database {db} has other clients: not flushing it", flush=True)
        return False
    client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()
    return True


class CpuMeter:
    """CPU seconds used by groups of processes between `start()` and `stop()`.

    A group is a list of root pids (their descendants count too) or a process name
    (e.g. every `postgres` process of the machine); pids seen only at the end count
    with their whole CPU time.
    """

    def __init__(self, roots: Mapping[str, Sequence[int]], names: Mapping[str, str]) -> None:
        self.roots = roots
        self.names = names
        self.before: dict[str, dict[int, float]] = {}
        self.wall_before = 0.0
        self.system_before: Any = None
        self.usage: dict[str, float] = {}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        import psutil

        groups: dict[str, dict[int, float]] = {}
        for group, pids in self.roots.items():
            procs = []
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(pid)
                    procs += [root, *root.children(recursive=True)]
            groups[group] = _cpu_of(procs)
        for group, name in self.names.items():
            procs = []
            for proc in psutil.process_iter(["name"]):
                if proc.info["name"] == name:
                    procs.append(proc)
            groups[group] = _cpu_of(procs)
        return groups

    def start(self) -> None:
        import psutil

        self.before = self._snapshot()
        self.system_before = psutil.cpu_times()
        self.wall_before = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Cores used on average (1.0 = one core busy) per group; `other` is every other
        process of the machine; then idle, iowait and steal (of a virtual machine)."""
        import psutil

        after = self._snapshot()
        system = psutil.cpu_times()
        wall = time.monotonic() - self.wall_before
        usage: dict[str, float] = {}
        for group, pids in after.items():
            before = self.before.get(group, {})
            used = sum(seconds - before.get(pid, 0.0) for pid, seconds in pids.items())
            usage[group] = used / wall
        delta = {
            name: getattr(system, name, 0.0) - getattr(self.system_before, name, 0.0)
            for name in ("idle", "iowait", "steal")
        }
        total = sum(system) - sum(self.system_before)
        busy = total - sum(delta.values())
        usage["other"] = max(0.0, busy / wall - sum(usage.values()))
        usage["idle"] = delta["idle"] / wall
        usage["iowait"] = delta["iowait"] / wall
        if delta["steal"]:
            usage["steal"] = delta["steal"] / wall
        self.usage = usage
        return usage

    def busy_ours(self) -> float:
        """Cores the metered groups kept busy during the last start()..stop()."""
        skip = {"other", "idle", "iowait", "steal"}
        return sum(v for k, v in self.usage.items() if k not in skip)


def _cpu_of(procs: Sequence[Any]) -> dict[int, float]:
    import psutil

    seconds: dict[int, float] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            seconds[proc.pid] = times.user + times.system
    return seconds


def say(message: str) -> None:
    """A progress line, stamped with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# Variables of the calling shell that would change how the started processes run.
_INHERITED_PREFIXES = ("DJANGO_", "GUNICORN_", "GRANIAN_", "CELERY_", "TRADEWATCH_", "PROMETHEUS_")


def production_env(
    *, database_url: str, redis_host: str, redis_port: int, broker_db: int, cache_db: int,
    bind: str, **extra: str,
) -> dict[str, str]:  # fmt: skip
    """The environment of Tradewatch's production processes started by a benchmark: DEBUG
    off, its own database and Redis databases, quiet logs, listening on `bind`;
    `extra` on top (worker counts, a Prometheus folder, a variant's settings)."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)
    }
    redis = f"{redis_host}:{redis_port}"
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "monitoring_site.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": f"redis://{redis}/{broker_db}",
            "CELERY_RESULT_BACKEND": f"redis://{redis}/{broker_db}",
            "CACHE_URL": f"rediscache://{redis}/{cache_db}",
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "SECURE_SSL_REDIRECT": "False",
            "LOG_LEVEL": "WARNING",
            "TRADEWATCH_BIND": bind,
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


Cleanup = list[Callable[[], object]]


def run_with_cleanup(
    name: str, run: Callable[[Path, Cleanup], dict[str, Any]], *, keep_logs: bool
) -> int:
    """Run a benchmark that starts servers and prints its summary as the last line.

    `run(workdir, cleanup)` appends a clean-up step for each thing it sets up; they run in
    reverse order however the run ends (Ctrl-C and SIGTERM included; a second signal is
    ignored, so it cannot cut the clean-up short). The work folder's logs are kept when
    asked, or when the run failed.
    """

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    workdir = Path(tempfile.mkdtemp(prefix=f"tradewatch-bench-{name}-"))
    cleanup: Cleanup = []
    summary: dict[str, Any] | None = None
    try:
        summary = run(workdir, cleanup)
    finally:
        for step in reversed(cleanup):
            try:
                step()
            except Exception as exc:  # keep cleaning up; say what failed
                print(f"cleanup step failed: {exc!r}", flush=True)
        if (keep_logs or summary is None) and any(workdir.iterdir()):
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))
    return 0
