"""Slow clients: ingestion latency with 200 slowloris connections held open.

The production web process (`python -m monitoring_site.launcher web`, its default
workers and threads, DEBUG off) runs against a fresh PostgreSQL database. One run:

1. unloaded: --requests POSTs of a small metrics batch to `/api/v1/metrics`, one after
   the other, each on a new connection (as a bot reconnecting would); their latency.
2. loaded: --connections slowloris connections are opened: each sends the start of a
   request and then one more header byte every --drip seconds, never finishing its
   headers. A connection the server closes is opened again at once, so the load stays
   at --connections throughout. After --settle seconds the same POSTs are timed again,
   and `/healthz` is asked once.

A POST that fails or takes longer than --timeout counts as --timeout seconds (so a
server that stops answering shows as such) and as a failure; the loaded phase gives up
after --budget seconds (requests not sent count as failures).

    .venv/bin/python -m bench.slow_clients [--connections 200] [--requests 300]

The last line printed is JSON:
{"unloaded_p50_ms": .., "unloaded_p99_ms": .., "loaded_p50_ms": .., "loaded_p99_ms": ..,
 "loaded_failures": .., "healthz_status": .., "connections_held": .., "reconnects": ..}
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import (
    ManagedProcess,
    create_database,
    drop_database,
    free_port,
    postgres_conninfo,
    production_env,
    redis_clients,
    redis_db_size,
    redis_flush,
    run_checked,
    run_with_cleanup,
    say,
)

HOST = "127.0.0.1"
INGEST_PATH = "/api/v1/metrics"


# --- the attack ---------------------------------------------------------------------


class SlowLoris:
    """`count` connections that each send one header byte every `drip` seconds, forever.

    Runs in a thread of its own; a connection the server closes (or answers, e.g. 408)
    is replaced at once, so `count` stay open as far as the server allows.
    """

    def __init__(self, host: str, port: int, count: int, drip: float = 1.0) -> None:
        self.host, self.port, self.count, self.drip = host, port, count, drip
        self.sockets: list[socket.socket | None] = [None] * count
        self.reconnects = 0
        self.held_min: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2)
            sock.sendall(
                f"POST {INGEST_PATH} HTTP/1.1\r\nHost: {self.host}\r\nX-Slow: ".encode("ascii")
            )
        except OSError:
            return None
        sock.setblocking(False)
        return sock

    @staticmethod
    def _still_open(sock: socket.socket) -> bool:
        """False once the server closed the connection or answered it (it is done)."""
        try:
            return not sock.recv(4096, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: the server is still waiting for our headers
        except OSError:
            return False

    def start(self) -> SlowLoris:
        for index in range(self.count):
            self.sockets[index] = self._open()
        self._thread.start()
        return self

    def held(self) -> int:
        return sum(1 for sock in self.sockets if sock is not None)

    def reset_counters(self) -> None:
        self.held_min = None
        self.reconnects = 0

    def _run(self) -> None:
        # One byte per connection per `drip` seconds, spread over the interval.
        pause = self.drip / max(1, self.count)
        while not self._stop.is_set():
            for index in range(self.count):
                if self._stop.is_set():
                    return
                sock = self.sockets[index]
                alive = sock is not None and self._still_open(sock)
                if alive:
                    assert sock is not None
                    try:
                        sock.send(b"a")
                    except OSError:
                        alive = False
                if not alive:
                    if sock is not None:
                        sock.close()
                        self.reconnects += 1
                    self.sockets[index] = self._open()
                time.sleep(pause)
            held = self.held()
            self.held_min = held if self.held_min is None else min(self.held_min, held)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.sockets:
            if sock is not None:
                sock.close()


# --- the measured requests ----------------------------------------------------------


@dataclass
class Timings:
    """Latencies in seconds (failures counted as the timeout) and how many failed."""

    seconds: list[float] = field(default_factory=list)
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.seconds)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def small_batch() -> bytes:
    now = time.time()
    samples = [
        {"name": "equity", "value": 100_000.0, "ts": now},
        {"name": "open_positions", "value": 3, "ts": now},
        {"name": "exchange_latency_ms", "value": 42.0, "ts": now, "labels": {"exchange": "x"}},
    ]
    return json.dumps({"samples": samples}).encode()


def status_of(
    port: int, method: str, path: str, timeout: float, body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> int:  # fmt: skip
    """One request on a new connection; its status (0: no answer in time)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def post_once(port: int, key: str, timeout: float) -> int:
    """POST one small batch on a new connection; its status (0: no answer in time)."""
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    return status_of(port, "POST", INGEST_PATH, timeout, small_batch(), headers)


def timed_posts(port: int, key: str, count: int, timeout: float, budget: float) -> Timings:
    """`count` POSTs one after the other; those not sent within `budget` s count as failed."""
    timings = Timings()
    deadline = time.monotonic() + budget
    for _ in range(count):
        if time.monotonic() > deadline:
            timings.seconds.append(timeout)
            timings.failures += 1
            continue
        started = time.perf_counter()
        status = post_once(port, key, timeout)
        elapsed = time.perf_counter() - started
        timings.statuses[status] = timings.statuses.get(status, 0) + 1
        if status != 202:
            timings.failures += 1
            elapsed = max(elapsed, timeout) if status == 0 else elapsed
        timings.seconds.append(elapsed)
    return timings


def healthz_status(port: int, timeout: float) -> int:
    return status_of(port, "GET", "/healthz", timeout)


# --- the run ------------------------------------------------------------------------


def create_source(env: dict[str, str]) -> str:
    code = (
        "import django; django.setup()\n"
        "from metrics.services import source_create\n"
        "print(source_create(name='slow-clients-bot', kind='bot')[1])\n"
    )
    out = run_checked([sys.executable, "-c", code], env, timeout=120, what="creating a source")
    return out.strip().splitlines()[-1]


def run(args: argparse.Namespace, workdir: Path, cleanup: list[Any]) -> dict[str, Any]:
    for db in (args.redis_db, args.cache_db):
        if redis_db_size(HOST, args.redis_port, db) or redis_clients(HOST, args.redis_port, db):
            raise RuntimeError(f"Redis database {db} is in use: choose another (--redis-db)")
    for db in (args.redis_db, args.cache_db):
        cleanup.append(lambda db=db: redis_flush(HOST, args.redis_port, db))
    admin = postgres_conninfo(args.pg_host, args.pg_port, args.pg_user, "postgres")
    say(f"creating database {args.database}")
    create_database(admin, args.database)
    cleanup.append(lambda: drop_database(admin, args.database))

    port = free_port(HOST)
    env = production_env(
        database_url=f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}",
        redis_host=HOST, redis_port=args.redis_port, broker_db=args.redis_db,
        cache_db=args.cache_db, bind=f"{HOST}:{port}",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
    )  # fmt: skip
    say("migrating")
    run_checked([sys.executable, "manage.py", "migrate", "--noinput"], env, 300, "migrate")
    key = create_source(env)
    web = ManagedProcess(
        "web", [sys.executable, "-m", "monitoring_site.launcher", "web"], env, workdir / "web.log"
    )
    cleanup.append(lambda: web.stop(timeout=30))
    web.start()
    web.wait_for_http(f"http://{HOST}:{port}/healthz", timeout=60)
    say(f"web (pid {web.pid}) on {HOST}:{port}; logs in {workdir}")

    timed_posts(port, key, 20, args.timeout, args.budget)  # warm-up: connections, caches
    unloaded = timed_posts(port, key, args.requests, args.timeout, args.budget)
    say(f"unloaded: p50 {unloaded.percentile(0.5) * 1000:.1f} ms, statuses {unloaded.statuses}")

    loris = SlowLoris(HOST, port, args.connections, args.drip).start()
    cleanup.append(loris.stop)
    time.sleep(args.settle)
    loris.reset_counters()
    say(f"{loris.held()} slow connections open")
    loaded = timed_posts(port, key, args.requests, args.timeout, args.budget)
    health = healthz_status(port, args.timeout)
    held = loris.held_min if loris.held_min is not None else loris.held()
    say(
        f"loaded: p50 {loaded.percentile(0.5) * 1000:.1f} ms, statuses {loaded.statuses}, "
        f"/healthz {health}, at least {held} slow connections open, {loris.reconnects} reopened"
    )

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    return {
        "unloaded_p50_ms": ms(unloaded.percentile(0.5)),
        "unloaded_p99_ms": ms(unloaded.percentile(0.99)),
        "loaded_p50_ms": ms(loaded.percentile(0.5)),
        "loaded_p99_ms": ms(loaded.percentile(0.99)),
        "loaded_failures": loaded.failures,
        "healthz_status": health,
        "connections_held": held,
        "reconnects": loris.reconnects,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=200, help="slowloris connections")
    parser.add_argument("--drip", type=float, default=1.0, help="seconds between header bytes")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--requests", type=int, default=300, help="POSTs timed in each phase")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds one POST may take")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds one phase may take")
    parser.add_argument("--database", default="tradewatch_bench_slow")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=12, help="Celery broker database")
    parser.add_argument("--cache-db", type=int, default=13, help="Django cache database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_with_cleanup(
        "slow", lambda workdir, cleanup: run(args, workdir, cleanup), keep_logs=False
    )


if __name__ == "__main__":
    sys.exit(main())
