"""Ingestion throughput: metric samples per second through the HTTP API against raw COPY.

One run measures, on this machine and in this order:

1. api: samples per second accepted (202) by `POST /api/v1/metrics` as production runs
   it: the web server (`python -m monitoring_site.launcher web`, --workers web
   processes of --threads Django threads each,
   DEBUG off) and a Celery worker (`launcher worker`) on a dedicated Redis database,
   against a fresh PostgreSQL database. Realistic data: --sources sources, each with
   its own API key, sending 10 metric names with a few labels each (equity, per-symbol
   positions and prices, exchange latency, rate limit, error rate, open positions, host
   CPU: 28 series a source, values in their normal ranges) in --batch-size batches,
   every sample at its own instant of the last few minutes.
   Bodies are JSON-encoded before the clock starts; --sender-processes processes of
   --senders threads each post them, one `http.client.HTTPConnection` per thread.
2. copy: rows per second written by psycopg binary COPY (as `metrics.ingest` does)
   into the same `metrics_metricsample` table, same batch shape and series, one
   transaction per batch, over --copy-connections connections (default: as many as
   the API may hold, one per Django thread: workers x threads) in parallel processes,
   with the web and worker stopped.
3. bytes_per_sample: after VACUUM ANALYZE, pg_total_relation_size of the sample table
   (heap, indexes, TOAST, free-space and visibility maps) over its row count, on at
   least --min-rows rows (topped up with COPY if the run stored fewer).

Progress lines also say where the CPU went in each phase (web, worker, postgres, redis,
senders; "other" is every other program, and short-lived PostgreSQL backends, which
end before they can be metered), how many PostgreSQL connections the API phase opened,
and the B-tree leaf density of the sample table's indexes. The machine may be shared:
before each phase the benchmark waits (--quiet-wait) for other programs to go idle.

The database (--database, default tradewatch_bench) is created for the run and dropped
at the end; the two Redis databases (--redis-db for the broker, --cache-db for the
cache) must be empty at the start and are flushed at the end.

    .venv/bin/python -m bench.ingest [--duration 20] [--sender-processes 2 --senders 2] ...

The last line printed is JSON:
{"api_samples_per_s": .., "copy_samples_per_s": .., "ratio": .., "bytes_per_sample": ..}
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing
import multiprocessing.connection
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import (
    CpuMeter,
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
SAMPLE_TABLE = "metrics_metricsample"
INGEST_PATH = "/api/v1/metrics"

# What a trading bot reports: 10 metric names, 28 series per source. equity goes
# without labels (derived trading metrics read it so); the other names are those the
# built-in trading rule pack watches or a bot reports per symbol. Values stay in their
# normal ranges, so evaluation runs its usual course without an alert storm.
SYMBOLS = {"BTC/USDT": 97_000.0, "ETH/USDT": 3_600.0, "SOL/USDT": 240.0, "BNB/USDT": 650.0,
           "XRP/USDT": 2.3}  # fmt: skip
EXCHANGE = "binance"
STRATEGY = "mean-reversion"
# Consecutive instants of one series are this far apart (milliseconds): unique ts.
TICK_MS = 5


@dataclass(frozen=True)
class SeriesDef:
    name: str
    labels: dict[str, str]
    low: float  # values are drawn from [low, high] (equity: a slow walk around low)
    high: float
    integer: bool = False


def series_definitions() -> list[SeriesDef]:
    """Every series a source sends, in a fixed order."""
    series = [SeriesDef("equity", {}, 100_000.0, 100_000.0)]
    for symbol, price in SYMBOLS.items():
        labels = {"symbol": symbol, "exchange": EXCHANGE, "strategy": STRATEGY}
        series += [
            SeriesDef("position_size", labels, 0.0, 2.0),
            SeriesDef("unrealized_pnl", labels, -50.0, 50.0),
            SeriesDef("mid_price", labels, price * 0.999, price * 1.001),
            SeriesDef("spread_bps", labels, 0.5, 3.0),
        ]
    for endpoint in ("order", "cancel", "book"):
        series.append(
            SeriesDef("exchange_latency_ms", {"exchange": EXCHANGE, "endpoint": endpoint}, 15, 250)
        )
    series += [
        SeriesDef("rate_limit_remaining", {"exchange": EXCHANGE}, 600, 1200, integer=True),
        SeriesDef("error_rate_pct", {"strategy": STRATEGY}, 0.0, 2.0),
        SeriesDef("open_positions", {"strategy": STRATEGY}, 0, 5, integer=True),
        SeriesDef("host_cpu_pct", {"host": "bot-host-1"}, 10.0, 60.0),
    ]
    return series


def sample_value(series: SeriesDef, tick: int, rng: random.Random) -> float:
    if series.name == "equity":
        return round(series.low + 200 * math.sin(tick / 700) + rng.uniform(-5, 5), 2)
    if series.integer:
        return float(rng.randint(int(series.low), int(series.high)))
    return round(rng.uniform(series.low, series.high), 6)


def labels_key(labels: dict[str, str]) -> str:
    """The canonical labels JSON the server keys series by (sorted keys, no spaces)."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Shape:
    """Which samples batch number `b` holds; identical for the API and COPY phases.

    Batch b belongs to source b % sources and is that source's (b // sources)-th batch;
    sample i of it is series i % n_series at tick (b // sources) * ticks + i // n_series,
    so no two samples of a run share a (series, ts) pair.
    """

    sources: int
    batch_size: int
    n_series: int

    @property
    def ticks(self) -> int:
        return math.ceil(self.batch_size / self.n_series)

    def source_of(self, batch: int) -> int:
        return batch % self.sources

    def first_tick(self, batch: int) -> int:
        return (batch // self.sources) * self.ticks


# --- API senders (child processes) ------------------------------------------------------


@dataclass
class SenderConfig:
    port: int
    keys: list[str]  # API key of source i
    shape: Shape
    t0: float  # UNIX seconds of tick 0 (API phase)
    threads: int
    timeout: float


def encode_batch(config: SenderConfig, batch: int) -> tuple[str, bytes]:
    """The Authorization header and the JSON body of batch number `batch`."""
    import orjson

    shape = config.shape
    series = series_definitions()
    rng = random.Random(batch)
    first_tick = shape.first_tick(batch)
    samples = []
    for i in range(shape.batch_size):
        j = i % shape.n_series
        tick = first_tick + i // shape.n_series
        definition = series[j]
        samples.append(
            {
                "name": definition.name,
                "value": sample_value(definition, tick, rng),
                "ts": round(config.t0 + tick * TICK_MS / 1000, 3),
                "labels": definition.labels,
            }
        )
    key = config.keys[shape.source_of(batch)]
    return f"Api-Key {key}", orjson.dumps({"samples": samples})


@dataclass
class ThreadResult:
    completions: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, accepted)
    statuses: Counter[str] = field(default_factory=Counter)
    first_error: str = ""
    exhausted_at: float | None = None  # ran out of bodies before the end


def _send(
    config: SenderConfig,
    bodies: list[tuple[str, bytes]],
    start: float,
    end: float,
    result: ThreadResult,
) -> None:
    conn = http.client.HTTPConnection(HOST, config.port, timeout=config.timeout)
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    try:
        for auth, body in bodies:
            if time.monotonic() >= end:
                break
            headers = {"Authorization": auth, "Content-Type": "application/json"}
            try:
                try:
                    conn.request("POST", INGEST_PATH, body=body, headers=headers)
                    response = conn.getresponse()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    # A kept-alive connection the server closed while it sat idle (between
                    # phases): reopen it and send again, as HTTP client libraries do.
                    conn.close()
                    conn.request("POST", INGEST_PATH, body=body, headers=headers)
                    response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                result.statuses[type(exc).__name__] += 1
                result.first_error = result.first_error or repr(exc)
                continue
            done = time.monotonic()
            if response.status == 202:
                result.completions.append((done, int(json.loads(data)["accepted"])))
            else:
                result.statuses[str(response.status)] += 1
                result.first_error = result.first_error or f"{response.status} {data[:300]!r}"
            # The web server keeps the connection open between requests; should it
            # answer "Connection: close", http.client reconnects on the next request.
        else:
            result.exhausted_at = time.monotonic()
    finally:
        conn.close()


def sender_main(pipe: multiprocessing.connection.Connection, config: SenderConfig) -> None:
    """A sender process: encode bodies when told, post them when told, report."""
    _child_signals()
    bodies: list[list[tuple[str, bytes]]] = []
    while True:
        message = pipe.recv()
        if message[0] == "encode":
            batches_per_thread: list[list[int]] = message[1]
            bodies = [[encode_batch(config, b) for b in batches] for batches in batches_per_thread]
            pipe.send(("encoded", sum(len(body) for thread in bodies for _, body in thread)))
        elif message[0] == "run":
            start, end = message[1], message[2]
            results = [ThreadResult() for _ in bodies]
            threads = [
                threading.Thread(target=_send, args=(config, chunk, start, end, res), daemon=True)
                for chunk, res in zip(bodies, results, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            bodies = []
            pipe.send(("result", results))
        else:
            return


class Senders:
    """--sender-processes processes of --senders threads each."""

    def __init__(self, config: SenderConfig, processes: int) -> None:
        self.config = config
        context = multiprocessing.get_context("fork")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=sender_main, args=(child_end, config), daemon=True)
            process.start()
            child_end.close()
            self.pipes.append(parent_end)
            self.processes.append(process)

    @property
    def total_threads(self) -> int:
        return len(self.processes) * self.config.threads

    def _recv(self, pipe: multiprocessing.connection.Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise RuntimeError(f"a sender process did not answer in {timeout}s")
        return pipe.recv()

    def encode(self, batches: list[int], timeout: float = 600) -> int:
        """Hand out `batches` round-robin over every thread; wait until all are encoded."""
        n = self.total_threads
        per_thread = [batches[i::n] for i in range(n)]
        threads = self.config.threads
        for p, pipe in enumerate(self.pipes):
            pipe.send(("encode", per_thread[p * threads : (p + 1) * threads]))
        return sum(self._recv(pipe, timeout)[1] for pipe in self.pipes)

    def run(self, start: float, end: float, meter: CpuMeter | None = None) -> list[ThreadResult]:
        for pipe in self.pipes:
            pipe.send(("run", start, end))
        if meter is not None:
            measure_cpu(meter, start, end)
        timeout = end - time.monotonic() + self.config.timeout + 30
        results: list[ThreadResult] = []
        for pipe in self.pipes:
            results.extend(self._recv(pipe, max(timeout, 1.0))[1])
        return results

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("quit",))
        stop_children(self.processes, grace=5.0)


def _child_signals() -> None:
    """In a child: the parent decides when to stop (Ctrl-C goes to the whole group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_children(processes: Sequence[multiprocessing.process.BaseProcess], grace: float) -> None:
    """Wait up to `grace` seconds for child processes to end, then terminate, then kill."""
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


@dataclass
class PhaseResult:
    samples: int
    seconds: float
    requests: int
    errors: Counter[str]
    first_error: str
    exhausted: bool

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def tally(results: list[ThreadResult], start: float, end: float) -> PhaseResult:
    """Samples accepted between start and end (or until the first thread ran dry)."""
    exhausted = [r.exhausted_at for r in results if r.exhausted_at is not None]
    stop = min([end, *exhausted])
    samples = requests = 0
    errors: Counter[str] = Counter()
    first_error = ""
    for r in results:
        for done, accepted in r.completions:
            if start <= done <= stop:
                samples += accepted
                requests += 1
        errors.update(r.statuses)
        first_error = first_error or r.first_error
    return PhaseResult(samples, stop - start, requests, errors, first_error, bool(exhausted))


# --- COPY writers (child processes) -------------------------------------------------------


def copy_main(
    queue: Any,
    conninfo: str,
    series_ids: list[list[int]],
    shape: Shape,
    t0: datetime,
    batches: tuple[int, int],  # (first, stride): first, first + stride, ...
    start: float,
    end: float,
    max_batches: int | None,
) -> None:
    """Write batches by binary COPY, one transaction each, until `end`; report commits."""
    import psycopg

    _child_signals()
    rng = random.Random(batches[0])
    values = [rng.uniform(-100, 1_000) for _ in range(shape.batch_size)]
    n = shape.n_series
    layout = [(i % n, i // n) for i in range(shape.batch_size)]
    tick = timedelta(milliseconds=TICK_MS)
    completions: list[tuple[float, int]] = []
    error = ""
    try:
        with psycopg.connect(conninfo) as conn:
            batch, stride = batches
            delay = start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            done = 0
            while time.monotonic() < end and (max_batches is None or done < max_batches):
                ids = series_ids[shape.source_of(batch)]
                base = t0 + shape.first_tick(batch) * tick
                stamps = [base + t * tick for t in range(shape.ticks)]
                with (
                    conn.transaction(),
                    conn.cursor() as cursor,
                    cursor.copy(
                        f"COPY {SAMPLE_TABLE} (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
                    ) as copy,
                ):
                    copy.set_types(["int8", "timestamptz", "float8"])
                    for (j, t), value in zip(layout, values, strict=True):
                        copy.write_row((ids[j], stamps[t], value))
                completions.append((time.monotonic(), shape.batch_size))
                batch += stride
                done += 1
    except Exception as exc:  # reported to the parent, which fails the run
        error = repr(exc)
    queue.put((completions, error))


def run_copy(
    *,
    conninfo: str,
    series_ids: list[list[int]],
    shape: Shape,
    t0: datetime,
    connections: int,
    first_batch: int,
    start: float,
    end: float,
    max_batches_each: int | None = None,
    meter: CpuMeter | None = None,
    meter_from: float = 0.0,
) -> list[tuple[float, int]]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(
            target=copy_main,
            args=(
                queue,
                conninfo,
                series_ids,
                shape,
                t0,
                (first_batch + c, connections),
                start,
                end,
                max_batches_each,
            ),
            daemon=True,
        )
        for c in range(connections)
    ]
    for process in processes:
        process.start()
    if meter is not None:
        meter.roots = {**meter.roots, "copy writers": [p.pid for p in processes if p.pid]}
        measure_cpu(meter, max(start, meter_from), end)
    completions: list[tuple[float, int]] = []
    errors = []
    try:
        for _ in processes:
            rows, error = queue.get(timeout=max(end - time.monotonic(), 0) + 600)
            completions.extend(rows)
            if error:
                errors.append(error)
    finally:
        stop_children(processes, grace=10.0)
    if errors:
        raise RuntimeError(f"COPY failed: {errors[0]}")
    return completions


# --- the run ---------------------------------------------------------------------------


def measure_cpu(meter: CpuMeter, start: float, end: float) -> None:
    """Meter CPU from `start` to `end` (monotonic), then print who used it."""
    time.sleep(max(0.0, start - time.monotonic()))
    meter.start()
    # Stop a little early: processes ending at `end` take their CPU time with them.
    time.sleep(max(0.0, end - 0.3 - time.monotonic()))
    usage = meter.stop()
    say("cpu (cores busy on average): " + ", ".join(f"{k} {v:.2f}" for k, v in usage.items()))
    if usage["other"] > 0.2:
        say(f"warning: other programs kept {usage['other']:.2f} cores busy meanwhile")


def wait_for_quiet(meter: CpuMeter, limit: float) -> None:
    """Wait (at most `limit` seconds) until other programs leave the CPUs alone.

    This machine may be shared: a test suite running beside the benchmark takes a core
    away from it and the figures with it.
    """
    deadline = time.monotonic() + limit
    waited = False
    while True:
        meter.start()
        time.sleep(2.0)
        other = meter.stop()["other"]
        if other < 0.25:
            if waited:
                say("the machine is quiet again")
            return
        if time.monotonic() >= deadline:
            say(f"warning: other programs keep {other:.2f} cores busy; measuring anyway")
            return
        if not waited:
            say(f"other programs keep {other:.2f} cores busy: waiting up to {limit:.0f}s")
            waited = True


def create_sources(env: dict[str, str], count: int) -> list[str]:
    """Create `count` sources through the service layer; return their plain keys in order."""
    code = f"""
import json, django
django.setup()
from metrics.services import source_create
keys = []
for i in range({count}):
    tags = ["bench", "live", "binance" if i % 2 else "bybit"]
    _, key = source_create(name=f"bench-bot-{{i:03d}}", kind="bot", tags=tags)
    keys.append(key)
print(json.dumps(keys))
"""
    out = run_checked([sys.executable, "-c", code], env, timeout=120, what="creating sources")
    keys = json.loads(out.strip().splitlines()[-1])
    assert isinstance(keys, list)
    assert len(keys) == count
    return [str(key) for key in keys]


def fetch_series_ids(conninfo: str, shape: Shape) -> list[list[int]]:
    """Series ids of every bench source, in `series_definitions()` order."""
    import psycopg

    position = {(d.name, labels_key(d.labels)): j for j, d in enumerate(series_definitions())}
    ids: list[list[int | None]] = [[None] * shape.n_series for _ in range(shape.sources)]
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT src.name, s.name, s.labels_key, s.id FROM metrics_metricseries s "
            "JOIN metrics_source src ON src.id = s.source_id WHERE src.name LIKE 'bench-bot-%'"
        ).fetchall()
    for source_name, name, key, series_id in rows:
        j = position.get((name, key))
        if j is not None:
            ids[int(source_name.rsplit("-", 1)[1])][j] = series_id
    missing = sum(1 for row in ids for x in row if x is None)
    if missing:
        raise RuntimeError(f"{missing} series were not created by the API phase")
    return [[int(x) for x in row if x is not None] for row in ids]


def table_stats(conninfo: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Summed over the partitions (a day each): the partitioned table itself holds none.
        row = conn.execute(
            "SELECT (SELECT count(*) FROM metrics_metricsample), "
            "sum(pg_total_relation_size(oid))::bigint, sum(pg_relation_size(oid))::bigint, "
            "sum(pg_indexes_size(oid))::bigint "
            "FROM pg_class WHERE oid = 'metrics_metricsample'::regclass "
            "OR oid IN (SELECT relid FROM pg_partition_tree('metrics_metricsample'))"
        ).fetchone()
    assert row is not None
    return {"rows": row[0], "total": row[1], "heap": row[2], "indexes": row[3]}


def database_sessions(conninfo: str, name: str) -> int:
    """Connections ever opened to database `name` (PostgreSQL 14+; 0 if unknown)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", [name]
            ).fetchone()
        except psycopg.Error:
            return 0
    return int(row[0]) if row and row[0] is not None else 0


def index_report(conninfo: str, rows: int) -> str:
    """Bytes per row of each index of the sample table, with the B-tree's leaf density
    when the pgstattuple extension can be created (in the throw-away database)."""
    import psycopg

    parts = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        density: dict[str, float] = {}
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'metrics_metricsample' "
                "AND indexdef LIKE '%USING btree%'"
            ).fetchall():
                found = conn.execute(
                    "SELECT avg_leaf_density FROM pgstatindex(%s::regclass)", [name]
                ).fetchone()
                if found is not None:
                    density[name] = float(found[0])
        except psycopg.Error:
            pass  # no pgstattuple here: sizes only
        for name, size in conn.execute(
            "SELECT indexname, (SELECT sum(pg_relation_size(oid))::bigint FROM pg_class "
            "WHERE oid = indexname::regclass "
            "OR oid IN (SELECT relid FROM pg_partition_tree(indexname::regclass))) FROM pg_indexes "
            "WHERE tablename = 'metrics_metricsample' ORDER BY indexname"
        ).fetchall():
            text = f"{name} {size / max(rows, 1):.1f} B/row"
            if name in density:
                text += f" (leaf pages {density[name]:.0f} % full)"
            parts.append(text)
    return ", ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured, each phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of API warm-up")
    parser.add_argument("--senders", type=int, default=2, help="sender threads per process")
    parser.add_argument("--sender-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="web processes")
    parser.add_argument("--threads", type=int, default=4, help="Django threads per web process")
    parser.add_argument("--copy-connections", type=int, help="default: --workers x --threads")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--min-rows", type=int, default=1_000_000, help="for bytes_per_sample")
    parser.add_argument("--database", default="tradewatch_bench")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--redis-port", type=int, default=6379)
    # Not 0/1 (development), 12/13 (bench.evaluation), 14/15 (tests).
    parser.add_argument("--redis-db", type=int, default=10, help="Celery broker database")
    parser.add_argument("--cache-db", type=int, default=11, help="Django cache database")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each phase, wait up to this long for other programs to go idle",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the web/worker logs")
    args = parser.parse_args(argv)
    if args.copy_connections is None:
        # The same number of database connections as the API may use: each web
        # server thread keeps one (CONN_MAX_AGE).
        args.copy_connections = args.workers * args.threads
    if args.redis_db == args.cache_db:
        parser.error("--redis-db and --cache-db must differ")
    return args


def run(args: argparse.Namespace, workdir: Path, cleanup: list[Any]) -> dict[str, float]:
    # Redis first: refuse to touch databases somebody else is using.
    for db in (args.redis_db, args.cache_db):
        size = redis_db_size(HOST, args.redis_port, db)
        if size or redis_clients(HOST, args.redis_port, db):
            raise RuntimeError(
                f"Redis database {db} holds {size} keys or has clients: "
                "choose unused ones (--redis-db, --cache-db)"
            )

    def flush_redis() -> None:
        for db in (args.redis_db, args.cache_db):
            redis_flush(HOST, args.redis_port, db)

    cleanup.append(flush_redis)

    admin = postgres_conninfo(args.pg_host, args.pg_port, args.pg_user, "postgres")
    bench_db = postgres_conninfo(args.pg_host, args.pg_port, args.pg_user, args.database)
    say(f"creating database {args.database}")
    create_database(admin, args.database)
    cleanup.append(lambda: drop_database(admin, args.database))

    port = free_port(HOST)
    env = production_env(
        database_url=f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}",
        redis_host=HOST, redis_port=args.redis_port, broker_db=args.redis_db,
        cache_db=args.cache_db, bind=f"{HOST}:{port}",
        WEB_CONCURRENCY=str(args.workers), WEB_THREADS=str(args.threads),
    )  # fmt: skip
    say("migrating")
    run_checked([sys.executable, "manage.py", "migrate", "--noinput"], env, 300, "migrate")
    say(f"creating {args.sources} sources with their API keys")
    keys = create_sources(env, args.sources)

    # The web server logs every request (monitoring_site/webserver.py): its
    # output goes to a log file, not to this terminal.
    launcher = [sys.executable, "-m", "monitoring_site.launcher"]
    worker = ManagedProcess("worker", [*launcher, "worker"], env, workdir / "worker.log")
    web = ManagedProcess("web", [*launcher, "web"], env, workdir / "web.log")
    cleanup.append(lambda: worker.stop(timeout=30))
    cleanup.append(lambda: web.stop(timeout=30))
    worker.start()
    web.start()
    say(
        f"started worker (pid {worker.pid}) and web (pid {web.pid}) on {HOST}:{port}; "
        f"logs in {workdir}"
    )
    web.wait_for_http(f"http://{HOST}:{port}/healthz", timeout=60)
    worker.wait_for_log("ready.", timeout=60)

    shape = Shape(args.sources, args.batch_size, len(series_definitions()))
    t0 = float(int(time.time()) - 180)  # the API phase's samples: the last few minutes
    config = SenderConfig(port, keys, shape, t0, args.senders, timeout=60.0)
    senders = Senders(config, args.sender_processes)
    cleanup.append(senders.close)
    threads = senders.total_threads
    say(f"senders: {args.sender_processes} processes x {args.senders} threads = {threads}")
    next_batch = 0

    # Warm-up: creates every series, fills the caches, tells how many bodies to encode.
    warm_batches = max(3 * args.sources, 20 * threads)
    senders.encode(list(range(next_batch, next_batch + warm_batches)))
    next_batch += warm_batches
    start = time.monotonic() + 0.5
    warm = tally(senders.run(start, start + args.warmup), start, start + args.warmup)
    if warm.errors or not warm.samples:
        raise RuntimeError(f"warm-up errors {dict(warm.errors)}: {warm.first_error}")
    say(f"warm-up: {warm.rate:,.0f} samples/s over {warm.seconds:.1f}s")

    needed = math.ceil(warm.rate * args.duration * 2.5 / args.batch_size) + 20 * threads
    needed = min(needed, 25_000)  # ~1.7 GB of bodies at most
    encoded = senders.encode(list(range(next_batch, next_batch + needed)))
    next_batch += needed
    say(f"encoded {needed} batches ({encoded / 1e6:.0f} MB) for {args.duration:.0f}s")
    groups = {
        "web": [web.pid],
        "worker": [worker.pid],
        "senders": [p.pid for p in senders.processes if p.pid],
    }
    wait_for_quiet(
        CpuMeter(groups, {"postgres": "postgres", "redis": "redis-server"}), args.quiet_wait
    )
    start = time.monotonic() + 0.5
    meter = CpuMeter(groups, {"postgres": "postgres", "redis": "redis-server"})
    sessions_before = database_sessions(admin, args.database)
    results = senders.run(start, start + args.duration, meter)
    api = tally(results, start, start + args.duration)
    sessions = database_sessions(admin, args.database) - sessions_before
    senders.close()
    if api.exhausted:
        say(f"note: senders ran out of bodies; measured over the first {api.seconds:.1f}s")
    error_count = sum(api.errors.values())
    say(
        f"api: {api.samples:,} samples in {api.seconds:.1f}s = {api.rate:,.0f} samples/s "
        f"({api.requests} requests, {api.requests / api.seconds:.1f}/s, errors {error_count})"
    )
    # Short-lived PostgreSQL backends end before the CPU meter sees them: their cost
    # shows up under "other". This says how many there were.
    say(f"api: {sessions} PostgreSQL connections opened meanwhile ({sessions / api.seconds:.1f}/s)")
    if meter.busy_ours():
        say(
            f"api: {api.rate / meter.busy_ours():,.0f} samples per busy core-second "
            "(web, worker, postgres, redis, senders)"
        )
    if error_count > 0.01 * max(api.requests, 1):
        raise RuntimeError(f"API errors {dict(api.errors)}: {api.first_error}")
    if not web.alive() or not worker.alive():
        raise RuntimeError("web or worker died during the run")

    web.stop(timeout=30)
    worker.stop(timeout=30)
    tasks = Counter(
        line.split("Task ", 1)[1].split("[", 1)[0]
        for line in worker.log_path.read_text(errors="replace").splitlines()
        if " succeeded in " in line and "Task " in line
    )
    say(f"stopped web and worker; the worker ran {dict(tasks) or 'no tasks'}")

    series_ids = fetch_series_ids(bench_db, shape)
    stats = table_stats(bench_db)
    say(f"stored {stats['rows']:,} samples so far")

    # COPY: an hour earlier than the API's instants, so no (series, ts) pair repeats.
    copy_t0 = datetime.fromtimestamp(t0, UTC) - timedelta(hours=1)
    copy_warmup = 2.0
    wait_for_quiet(CpuMeter({}, {"postgres": "postgres"}), args.quiet_wait)
    begin = time.monotonic() + 0.5
    start = begin + copy_warmup
    end = start + args.duration
    copy_meter = CpuMeter({}, {"postgres": "postgres"})
    completions = run_copy(
        conninfo=bench_db,
        series_ids=series_ids,
        shape=shape,
        t0=copy_t0,
        connections=args.copy_connections,
        first_batch=0,
        start=begin,
        end=end,
        meter=copy_meter,
        meter_from=start,
    )
    copied = sum(rows for done, rows in completions if start <= done <= end)
    copy_rate = copied / args.duration
    say(
        f"copy: {copied:,} rows in {args.duration:.0f}s over {args.copy_connections} "
        f"connections = {copy_rate:,.0f} rows/s"
    )
    if copy_meter.busy_ours():
        say(
            f"copy: {copy_rate / copy_meter.busy_ours():,.0f} rows per busy core-second "
            "(writers, postgres)"
        )

    stats = table_stats(bench_db)
    if stats["rows"] < args.min_rows:
        missing_batches = math.ceil((args.min_rows - stats["rows"]) / args.batch_size)
        say(f"topping up with {missing_batches * args.batch_size:,} rows by COPY")
        now = time.monotonic()
        run_copy(
            conninfo=bench_db,
            series_ids=series_ids,
            shape=shape,
            t0=copy_t0 - timedelta(hours=1),
            connections=args.copy_connections,
            first_batch=0,
            start=now,
            end=now + 3600,
            max_batches_each=math.ceil(missing_batches / args.copy_connections),
        )

    import psycopg

    say("VACUUM ANALYZE")
    with psycopg.connect(bench_db, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {SAMPLE_TABLE}")
    stats = table_stats(bench_db)
    bytes_per_sample = stats["total"] / stats["rows"]
    say(
        f"{SAMPLE_TABLE}: {stats['rows']:,} rows, {stats['total'] / 2**20:.1f} MiB total "
        f"(heap {stats['heap'] / stats['rows']:.1f} B/row, "
        f"indexes {stats['indexes'] / stats['rows']:.1f} B/row) = "
        f"{bytes_per_sample:.1f} bytes per sample"
    )
    say(f"indexes: {index_report(bench_db, stats['rows'])}")
    return {
        "api_samples_per_s": round(api.rate, 1),
        "copy_samples_per_s": round(copy_rate, 1),
        "ratio": round(api.rate / copy_rate, 3) if copy_rate else 0.0,
        "bytes_per_sample": round(bytes_per_sample, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_with_cleanup(
        "ingest", lambda workdir, cleanup: run(args, workdir, cleanup), keep_logs=args.keep_logs
    )


if __name__ == "__main__":
    sys.exit(main())
