"""A throw-away PostgreSQL cluster of a test's own, for tests that stop the database
or need a streaming replica.

The shared server on 5432 is never touched: the cluster is made with initdb in a
temporary directory, listens on a spare loopback port (5441-5449) with trust
authentication, and is removed when the test ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

SPARE_PORTS = range(5441, 5450)


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return Path(found[-1]).parent


def _spare_port() -> int:
    for port in SPARE_PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no spare port in {SPARE_PORTS}")


class Cluster:
    """One cluster: `start()`, `stop()`, and the URL of a database in it."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self._bin = _binaries()
        # PostgreSQL refuses to run as root: run it as the `postgres` system user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(
            str(self._bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.directory} -c fsync=off"
        )
        self._run(
            str(self._bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url(database)) as connection:
            return list(connection.execute(sql).fetchall())

    def base_backup(self, directory: Path) -> None:
        """Copy this (running) cluster into `directory`'s data as a streaming standby
        (pg_basebackup -R writes standby.signal and the primary's conninfo; a fast
        checkpoint, else it waits for a spread one, minutes)."""
        self._run(
            str(self._bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", "-D", str(directory / "data"), "-R", "-X", "stream",
            "--checkpoint=fast", "--no-sync",
        )  # fmt: skip


def _scratch_directory(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


@contextmanager
def scratch_cluster() -> Iterator[Cluster]:
    """A running cluster of the caller's own, stopped and deleted afterwards."""
    directory = _scratch_directory("tw-pg-")
    cluster = Cluster(directory, _spare_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def streaming_replica(primary: Cluster) -> Iterator[Cluster]:
    """A hot standby of `primary` (pg_basebackup, then streaming replication) on another
    spare port, stopped and deleted afterwards."""
    directory = _scratch_directory("tw-pg-replica-")
    replica = Cluster(directory, _spare_port())
    try:
        primary.base_backup(directory)
        replica.start()
        yield replica
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            replica.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
