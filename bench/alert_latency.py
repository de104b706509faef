"""Alert latency: from posting a breaching batch to its alert row being visible in PostgreSQL.

Production processes on loopback against a throw-away database: the web server
(`python -m monitoring_site.launcher web`, --workers web workers, DEBUG off) and one
Celery worker (`launcher worker`, the production command), a dedicated pair of Redis
databases (broker, cache). `migrate` installs the trading rule pack; its "Leverage"
rule fires CRITICAL when a source's last `leverage` is over 3 and clears under 2.8.

1. capacity: --bg-threads threads post 500-sample batches of a harmless metric
   (`latency_ms` over 5 endpoints, every sample at its own instant) for the
   --bg-sources background sources as fast as the API takes them, for
   --capacity-seconds: samples per second accepted (202).
2. background: the same senders, throttled by a token bucket to --load (default 0.5)
   of that capacity, run throughout the firings; the rate they achieved meanwhile is
   reported.
3. firings: one at a time over --probe-sources probe sources in turn: t0, POST
   `{"samples": [{"name": "leverage", "value": 5}]}`, then poll `alerts_alert` every
   --poll-ms (1) ms on a dedicated connection until the source's Leverage alert is
   firing: latency = visible - t0. Then POST leverage 1, wait until the alert resolved
   and pause 20-50 ms, so that no probe ever waits behind another probe's work. One
   firing per probe source first warms every process up and is not counted. An alert
   not visible after --timeout seconds is a timeout.

With --continuous, the --probe-sources (then 20 by default) also send as trading bots do:
each posts a calm batch of metrics the pack's rules read every --stream-ms (100) ms, from
a process of its own (`bench.steady_batches`), so an evaluation of the source is nearly
always in flight or just ending when its breach arrives. The firings go on among that stream.

The machine may be shared: the run first waits (up to --quiet-wait seconds) until no
other benchmark (`python -m bench.*`) or test run (pytest) goes on and other programs
leave the CPUs alone, and starts the measurement over (up to --attempts times) when one
starts meanwhile; the last attempt only warns. Either would disturb this benchmark's
figures, and this benchmark theirs.

Each firing is split with the alert's `first_seen` (the clock of the process that
evaluated, when the evaluation started; same machine, same clock): to evaluation (POST
until the evaluation started: validation, COPY, commit, and for an evaluation by a
worker also the broker and the worker's pick-up) and evaluate (evaluation start until
the poll saw the committed row). Beside them, api is the POST until its answer, which
holds the evaluation when it ran on arrival (TRADEWATCH_EVALUATE_ON_ARRIVAL). The
worker log gives the duration of every `evaluate_source` task the worker ran.

    .venv/bin/python -m bench.alert_latency [--firings 400] [--load 0.5] ...

The last line printed is JSON: {"ingest_to_alert_p50_ms": .., "ingest_to_alert_p99_ms":
.., "firings": .., "timeouts": .., "background_samples_per_s": ..,
"api_capacity_samples_per_s": ..} (with --continuous also "stream_batches_per_s"). Goal:
p99 < 50 ms, in both modes.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
from bench.steady_batches import Stream

HOST = "127.0.0.1"
INGEST_PATH = "/api/v1/metrics"
LEVERAGE_RULE = "Leverage"
BREACH_BODY = b'{"samples":[{"name":"leverage","value":5}]}'
CALM_BODY = b'{"samples":[{"name":"leverage","value":1}]}'
INGEST_QUEUE = "ingest"
EVALUATE_TASK = "alerts.tasks.evaluate_source"
# The background metric: no rule of the trading pack watches it.
BACKGROUND_METRIC = "latency_ms"
ENDPOINTS = ("order", "cancel", "book", "ticker", "account")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 50):.1f}, p90 {percentile(values, 90):.1f}, "
        f"p99 {percentile(values, 99):.1f}, max {max(values):.1f}"
    )


def post(conn: http.client.HTTPConnection, key: str, body: bytes) -> tuple[int, bytes]:
    """POST one batch: (status, answer). The web server keeps the connection open;
    should it close it after an answer, http.client reconnects by itself on the next
    request. A kept-alive connection the server closed while it sat
    idle (its keep-alive timeout, during a pause of the run) fails on first use: it is
    reopened and the batch sent once more, as HTTP client libraries do."""
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    try:
        conn.request("POST", INGEST_PATH, body=body, headers=headers)
        response = conn.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        conn.close()
        conn.request("POST", INGEST_PATH, body=body, headers=headers)
        response = conn.getresponse()
    return response.status, response.read()


# --- background senders (a child process) --------------------------------------------------


@dataclass
class BackgroundConfig:
    port: int
    keys: list[str]
    threads: int
    batch_size: int
    ts_base: float  # UNIX seconds of tick 0 of every background source
    timeout: float = 30.0


@dataclass
class BackgroundResult:
    completions: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, accepted)
    statuses: Counter[str] = field(default_factory=Counter)
    first_error: str = ""


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; shared by the sender threads."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = 1.0
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, stop: threading.Event) -> bool:
        """Wait for a token; False when told to stop first."""
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return True
                wait = (1.0 - self.tokens) / self.rate
            if stop.wait(wait):
                return False


def background_body(config: BackgroundConfig, first_tick: int, rng: random.Random) -> bytes:
    """A batch of one background source: ENDPOINTS series, consecutive milliseconds."""
    import orjson

    samples = [
        {
            "name": BACKGROUND_METRIC,
            "value": round(rng.uniform(5.0, 250.0), 3),
            "ts": config.ts_base + (first_tick + i // len(ENDPOINTS)) / 1000,
            "labels": {"endpoint": ENDPOINTS[i % len(ENDPOINTS)]},
        }
        for i in range(config.batch_size)
    ]
    return orjson.dumps({"samples": samples})


def _background_thread(
    config: BackgroundConfig,
    sources: list[int],
    ticks: list[int],
    bucket: TokenBucket | None,
    stop: threading.Event,
    result: BackgroundResult,
    seed: int,
) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(HOST, config.port, timeout=config.timeout)
    ticks_per_batch = -(-config.batch_size // len(ENDPOINTS))
    turn = 0
    try:
        while not stop.is_set():
            source = sources[turn % len(sources)]
            turn += 1
            body = background_body(config, ticks[source], rng)
            # Each source is this thread's only: its ticks never repeat an instant.
            ticks[source] += ticks_per_batch
            if bucket is not None and not bucket.take(stop):
                break
            try:
                status, data = post(conn, config.keys[source], body)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                result.statuses[type(exc).__name__] += 1
                result.first_error = result.first_error or repr(exc)
                stop.wait(0.05)
                continue
            if status == 202:
                result.completions.append((time.monotonic(), int(json.loads(data)["accepted"])))
            else:
                result.statuses[str(status)] += 1
                result.first_error = result.first_error or f"{status} {data[:300]!r}"
    finally:
        conn.close()


def background_main(pipe: multiprocessing.connection.Connection, config: BackgroundConfig) -> None:
    """Post background batches when told: ("run", rate or None, start, end or None);
    an open-ended run lasts until ("stop",). Answers ("result", [BackgroundResult])."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    ticks = [0] * len(config.keys)
    while True:
        message = pipe.recv()
        if message[0] != "run":
            return
        rate, start, end = message[1], message[2], message[3]
        time.sleep(max(0.0, start - time.monotonic()))
        stop = threading.Event()
        bucket = TokenBucket(rate, burst=2.0) if rate else None
        results = [BackgroundResult() for _ in range(config.threads)]
        threads = [
            threading.Thread(
                target=_background_thread,
                args=(
                    config,
                    list(range(t, len(config.keys), config.threads)),
                    ticks,
                    bucket,
                    stop,
                    results[t],
                    t,
                ),
                daemon=True,
            )
            for t in range(config.threads)
        ]
        for thread in threads:
            thread.start()
        if end is not None:
            time.sleep(max(0.0, end - time.monotonic()))
        else:
            while not pipe.poll(0.2):
                pass
            pipe.recv()  # ("stop",)
        stop.set()
        for thread in threads:
            thread.join(timeout=config.timeout + 5)
        pipe.send(("result", results))


class Background:
    def __init__(self, config: BackgroundConfig) -> None:
        self.config = config
        self.paced = False
        context = multiprocessing.get_context("fork")
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(target=background_main, args=(child_end, config))
        self.process.daemon = True
        self.process.start()
        child_end.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def send_run(self, rate: float | None, start: float, end: float | None) -> None:
        self.pipe.send(("run", rate, start, end))

    def result(self, timeout: float) -> list[BackgroundResult]:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"the background senders did not answer in {timeout:.0f}s")
        message = self.pipe.recv()
        results: list[BackgroundResult] = message[1]
        return results

    def start_paced(self, rate: float) -> None:
        self.send_run(rate, time.monotonic(), None)
        self.paced = True

    def stop_paced(self) -> list[BackgroundResult]:
        self.pipe.send(("stop",))
        self.paced = False
        return self.result(self.config.timeout + 30)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("quit",))  # ends a paced run
            self.pipe.send(("quit",))  # ends the process
        deadline = time.monotonic() + 10
        while self.process.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(OSError, EOFError):
                if self.pipe.poll(0.1):
                    self.pipe.recv()  # the results of a paced run nobody waits for
        self.process.join(timeout=1)
        self.pipe.close()
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


@dataclass
class Tally:
    samples: int
    requests: int
    seconds: float
    errors: Counter[str]
    first_error: str

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def tally(results: list[BackgroundResult], start: float, end: float) -> Tally:
    samples = requests = 0
    errors: Counter[str] = Counter()
    first_error = ""
    for result in results:
        for done, accepted in result.completions:
            if start <= done <= end:
                samples += accepted
                requests += 1
        errors.update(result.statuses)
        first_error = first_error or result.first_error
    return Tally(samples, requests, end - start, errors, first_error)


# --- firings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    source_id: int
    key: str


@dataclass(frozen=True)
class Firing:
    latency_ms: float  # t0 until the poll saw the firing alert
    api_ms: float  # t0 until the POST's answer
    start_ms: float  # t0 until the evaluation started (the alert's first_seen)
    evaluate_ms: float  # evaluation start until seen
    # Delivery only: t0 until the worker began the POST to the receiver (from the
    # notification's delivery attempt), when its attempt row was found.
    send_start_ms: float | None = None


class Prober:
    """Fires and resets Leverage alerts one at a time, watching the alert table."""

    OPEN = (
        "SELECT first_seen FROM alerts_alert "
        "WHERE source_id = %s AND rule_id = %s AND state = 'firing' LIMIT 1"
    )
    ANY_OPEN = (
        "SELECT 1 FROM alerts_alert "
        "WHERE source_id = %s AND rule_id = %s AND state IN ('pending', 'firing') LIMIT 1"
    )

    def __init__(self, port: int, conninfo: str, rule_id: int, timeout: float, poll: float) -> None:
        import psycopg

        self.http = http.client.HTTPConnection(HOST, port, timeout=30)
        self.db = psycopg.connect(conninfo, autocommit=True)
        self.rule_id = rule_id
        self.timeout = timeout
        self.poll = poll

    def close(self) -> None:
        self.http.close()
        self.db.close()

    def _post(self, probe: Probe, body: bytes) -> None:
        try:
            status, data = post(self.http, probe.key, body)
        except (OSError, http.client.HTTPException):
            self.http.close()
            raise
        if status != 202:
            raise RuntimeError(f"probe POST answered {status}: {data[:300]!r}")

    def _first_seen(self, probe: Probe) -> datetime | None:
        row = self.db.execute(self.OPEN, (probe.source_id, self.rule_id), prepare=True).fetchone()
        return None if row is None else row[0]

    def is_open(self, probe: Probe) -> bool:
        query = self.ANY_OPEN
        return (
            self.db.execute(query, (probe.source_id, self.rule_id), prepare=True).fetchone()
            is not None
        )

    def fire(self, probe: Probe) -> Firing | None:
        """Breach, and wait until the alert is visible; None after `timeout` seconds."""
        wall0 = time.time()
        t0 = time.perf_counter()
        self._post(probe, BREACH_BODY)
        answered = time.perf_counter()
        deadline = t0 + self.timeout
        while True:
            first_seen = self._first_seen(probe)
            seen = time.perf_counter()
            if first_seen is not None:
                break
            if seen >= deadline:
                return None
            time.sleep(self.poll)
        started = (first_seen.timestamp() - wall0) * 1000  # evaluation start, after t0
        api = (answered - t0) * 1000
        latency = (seen - t0) * 1000
        return Firing(latency, api, started, latency - started)

    def reset(self, probe: Probe) -> bool:
        """Calm the source and wait until its alert resolved; False after `timeout` s."""
        self._post(probe, CALM_BODY)
        deadline = time.perf_counter() + self.timeout
        while self.is_open(probe):
            if time.perf_counter() >= deadline:
                return False
            time.sleep(self.poll)
        return True


@dataclass(frozen=True)
class Variant:
    """What a latency benchmark built on this one measures up to.

    `prepare(env, conninfo, probes)` runs after migrate (say, to create channels) and
    returns the prober; `extra_env` goes to every Tradewatch process; `key` names the
    figures of the last JSON line.
    """

    key: str
    prepare: Callable[[dict[str, str], str, int, list[Probe], argparse.Namespace, int], Prober]
    extra_env: dict[str, str] = field(default_factory=dict)
    doc: str = ""  # what --help says (the module's docstring); this module's by default


def _alert_prober(
    env: dict[str, str], conninfo: str, rule_id: int, probes: list[Probe],
    args: argparse.Namespace, port: int,
) -> Prober:  # fmt: skip
    return Prober(port, conninfo, rule_id, args.timeout, args.poll_ms / 1000)


ALERT_ROW = Variant(key="ingest_to_alert", prepare=_alert_prober)


class QueueSampler:
    """Samples the length of the broker's `ingest` queue every 10 ms in a thread."""

    def __init__(self, port: int, db: int) -> None:
        import redis

        self.client = redis.Redis(host=HOST, port=port, db=db, socket_timeout=5)
        # kombu's Redis transport: the queue's list, plus one per priority step.
        self.keys = [INGEST_QUEUE, *(f"{INGEST_QUEUE}\x06\x16{p}" for p in (3, 6, 9))]
        self.lengths: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            pipe = self.client.pipeline(transaction=False)
            for key in self.keys:
                pipe.llen(key)
            self.lengths.append(sum(int(n) for n in pipe.execute()))

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> list[int]:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.client.close()
        return self.lengths

    def drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(int(self.client.llen(key)) for key in self.keys) == 0:
                return True
            time.sleep(0.1)
        return False


def run_firings(
    prober: Prober,
    probes: list[Probe],
    count: int,
    gap: tuple[float, float],
    label: str,
    check: Callable[[], None] | None,
) -> tuple[list[Firing], int, int]:
    """`count` firings over `probes` in turn; (firings, timeouts, resets that timed out).
    `check` is called every 5 s (it raises to abandon the run)."""
    rng = random.Random(count)
    firings: list[Firing] = []
    timeouts = stuck = 0
    dirty: set[int] = set()
    turn = 0
    last_report = time.monotonic()
    for n in range(count):
        probe = probes[turn % len(probes)]
        turn += 1
        for _ in range(len(probes)):  # a source whose reset timed out: skip it until calm
            if probe.source_id not in dirty or not prober.is_open(probe):
                dirty.discard(probe.source_id)
                break
            probe = probes[turn % len(probes)]
            turn += 1
        else:
            raise RuntimeError("every probe source keeps an open Leverage alert")
        firing = prober.fire(probe)
        if firing is None:
            timeouts += 1
            say(f"{label}: firing {n + 1} on source {probe.source_id} timed out")
        else:
            firings.append(firing)
        if not prober.reset(probe):
            stuck += 1
            dirty.add(probe.source_id)
        time.sleep(rng.uniform(*gap))
        if time.monotonic() - last_report >= 5.0:
            last_report = time.monotonic()
            recent = [f.latency_ms for f in firings[-50:]]
            say(f"{label}: {n + 1}/{count} firings, last 50: {spread(recent)} ms")
            if check is not None:
                check()
    return firings, timeouts, stuck


# --- setup helpers ---------------------------------------------------------------------------


def create_sources(env: dict[str, str], prefix: str, count: int) -> list[tuple[int, str]]:
    """`count` sources through the service layer: [(id, plain API key)] in order."""
    code = f"""
import json, django
django.setup()
from metrics.services import source_create
out = []
for i in range({count}):
    source, key = source_create(name=f"{prefix}-{{i:03d}}", kind="bot", tags=["bench"])
    out.append([source.pk, key])
print(json.dumps(out))
"""
    out = run_checked([sys.executable, "-c", code], env, timeout=120, what="creating sources")
    rows = json.loads(out.strip().splitlines()[-1])
    assert len(rows) == count
    return [(int(pk), str(key)) for pk, key in rows]


def leverage_rule_id(conninfo: str) -> int:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT id FROM alerts_rule WHERE name = %s AND enabled AND kind = 'threshold'",
            [LEVERAGE_RULE],
        ).fetchone()
    if row is None:
        raise RuntimeError(f"no enabled {LEVERAGE_RULE!r} rule: did migrate install the pack?")
    return int(row[0])


def other_benchmarks() -> list[str]:
    """Command lines of other benchmarks (`python -m bench.*`) and test runs (pytest),
    not counting this one, its children, nor what started it (`timeout 900 ...`)."""
    import psutil

    mine = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        me = psutil.Process()
        mine |= {p.pid for p in me.children(recursive=True)} | {p.pid for p in me.parents()}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["pid"] in mine or not cmdline:
            continue
        modules = [cmdline[i + 1] for i, arg in enumerate(cmdline[:-1]) if arg == "-m"]
        if any(m.startswith("bench.") or m == "pytest" for m in modules) or any(
            Path(arg).name in ("pytest", "py.test") for arg in cmdline[:2]
        ):
            found.append(" ".join(cmdline))
    return found


def wait_for_quiet(meter: CpuMeter, limit: float) -> None:
    """Wait (at most `limit` s) until no other benchmark or test run goes on and other
    programs leave the CPUs alone for 6 s: they would disturb this benchmark's figures,
    and it theirs."""
    deadline = time.monotonic() + limit
    waited = False
    quiet_windows = 0
    while True:
        others = other_benchmarks()
        busy = 0.0
        if not others:
            meter.start()
            time.sleep(2.0)
            busy = meter.stop()["other"]
            quiet_windows = quiet_windows + 1 if busy < 0.25 else 0
            if quiet_windows >= 3:
                if waited:
                    say("the machine is quiet again")
                return
            if busy < 0.25:
                continue
        else:
            quiet_windows = 0
        if time.monotonic() >= deadline:
            what = f"{len(others)} other benchmark(s)" if others else f"{busy:.2f} busy cores"
            say(f"warning: {what} still running after {limit:.0f}s; measuring anyway")
            return
        if not waited:
            what = (
                f"another benchmark or test run goes on ({others[0][:120]})"
                if others
                else f"other programs keep {busy:.2f} cores busy"
            )
            say(f"{what}: waiting up to {limit:.0f}s")
            waited = True
        time.sleep(2.0)


TASK_LINE = re.compile(rf"Task {re.escape(EVALUATE_TASK)}\[[^\]]+\] succeeded in ([0-9.e-]+)s")


def task_durations(log: Path, start: int, end: int) -> list[float]:
    """Milliseconds of every evaluate_source task the worker logged between two offsets."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read(max(0, end - start)).decode(errors="replace")
    return [float(m.group(1)) * 1000 for m in TASK_LINE.finditer(text)]


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --- the run ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None, doc: str = "") -> argparse.Namespace:
    doc = doc or __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--firings", type=int, default=400, help="measured firings (>= 200)")
    parser.add_argument("--probe-sources", type=int, help="default: 50, or 20 with --continuous")
    parser.add_argument(
        "--continuous", action="store_true", help="the probe sources also send a steady stream"
    )
    parser.add_argument("--stream-ms", type=float, default=100.0, help="stream period per source")
    parser.add_argument("--bg-sources", type=int, default=50)
    parser.add_argument("--bg-threads", type=int, default=4, help="background sender threads")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--load", type=float, default=0.5, help="background share of capacity")
    parser.add_argument("--capacity-seconds", type=float, default=5.0)
    parser.add_argument(
        "--gap-ms", type=float, nargs=2, default=(20.0, 50.0), metavar=("MIN", "MAX")
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a timeout")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="alert table poll interval")
    parser.add_argument(
        "--workers", type=int, help="web server processes (default: as in production, 2 per core)"
    )
    parser.add_argument("--database", default="tradewatch_bench_alert_latency")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--redis-port", type=int, default=6379)
    # Not 0/1 (development), 6/7 (bench.delivery_latency), 10/11 (bench.ingest),
    # 12/13 (bench.evaluation), 14/15 (tests).
    parser.add_argument("--redis-db", type=int, default=8, help="Celery broker database")
    parser.add_argument("--cache-db", type=int, default=9, help="Django cache database")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=600.0,
        help="before measuring, wait up to this long for other benchmarks to finish",
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="start over when another benchmark or test run disturbs; the last attempt only warns",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the web/worker logs")
    args = parser.parse_args(argv)
    if args.probe_sources is None:
        args.probe_sources = 20 if args.continuous else 50
    if args.redis_db == args.cache_db:
        parser.error("--redis-db and --cache-db must differ")
    if not 0 < args.load <= 1:
        parser.error("--load must be in (0, 1]")
    if args.attempts < 1 or args.firings < 1:
        parser.error("--attempts and --firings must be at least 1")
    return args


class PhaseMeter:
    """CpuMeter's groups, plus this process (the prober) and the kernel's interrupt work
    (loopback traffic), both taken out of "other": what is left is other programs."""

    def __init__(self, groups: dict[str, list[int]], names: dict[str, str]) -> None:
        self.meter = CpuMeter(groups, names)
        self.own = 0.0
        self.system: Any = None
        self.wall = 0.0

    def start(self) -> None:
        import psutil

        self.meter.start()
        self.own = time.process_time()
        self.system = psutil.cpu_times()
        self.wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        import psutil

        usage = self.meter.stop()
        wall = time.monotonic() - self.wall
        system = psutil.cpu_times()
        prober = (time.process_time() - self.own) / wall
        kernel = sum(
            getattr(system, name, 0.0) - getattr(self.system, name, 0.0)
            for name in ("irq", "softirq")
        )
        usage["prober"] = prober
        usage["irq"] = kernel / wall
        usage["other"] = max(0.0, usage["other"] - prober - usage["irq"])
        return usage


def cpu_line(usage: dict[str, float]) -> str:
    return "cpu (cores busy on average): " + ", ".join(f"{k} {v:.2f}" for k, v in usage.items())


def measure_capacity(
    background: Background, meter: PhaseMeter, args: argparse.Namespace
) -> tuple[Tally, float]:
    """Samples per second the API takes when saturated (after a second of warm-up), and
    how many cores other programs kept busy meanwhile."""
    start = time.monotonic() + 0.2
    measured_from = start + 1.0
    end = measured_from + args.capacity_seconds
    background.send_run(None, start, end)
    time.sleep(max(0.0, measured_from - time.monotonic()))
    meter.start()
    time.sleep(max(0.0, end - 0.2 - time.monotonic()))
    usage = meter.stop()
    capacity = tally(background.result(args.capacity_seconds + 60), measured_from, end)
    if capacity.errors or not capacity.samples:
        raise RuntimeError(f"capacity errors {dict(capacity.errors)}: {capacity.first_error}")
    say(
        f"api capacity: {capacity.rate:,.0f} samples/s ({capacity.requests} batches of "
        f"{args.batch_size} in {capacity.seconds:.1f}s, {args.bg_threads} senders)"
    )
    say(cpu_line(usage))
    return capacity, usage["other"]


def run(
    args: argparse.Namespace, workdir: Path, cleanup: list[Any], variant: Variant = ALERT_ROW
) -> dict[str, float]:
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

    servers = {"postgres": "postgres", "redis": "redis-server"}
    wait_for_quiet(CpuMeter({}, servers), args.quiet_wait)  # setup takes a few CPU seconds
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
        **({"WEB_CONCURRENCY": str(args.workers)} if args.workers else {}),
        **variant.extra_env,
    )  # fmt: skip
    say("migrating (installs the trading rule pack)")
    run_checked([sys.executable, "manage.py", "migrate", "--noinput"], env, 300, "migrate")
    rule_id = leverage_rule_id(bench_db)
    say(f"creating {args.probe_sources} probe and {args.bg_sources} background sources")
    probes = [Probe(pk, key) for pk, key in create_sources(env, "probe", args.probe_sources)]
    bg_keys = [key for _, key in create_sources(env, "background", args.bg_sources)]

    launcher = [sys.executable, "-m", "monitoring_site.launcher"]
    # the web server empties its Prometheus folder on start (var/prometheus by default):
    # a folder of our own, so another web server running meanwhile keeps its counters.
    web_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus")}
    worker = ManagedProcess("worker", [*launcher, "worker"], env, workdir / "worker.log")
    web = ManagedProcess("web", [*launcher, "web"], web_env, workdir / "web.log")
    cleanup.append(lambda: worker.stop(timeout=30))
    cleanup.append(lambda: web.stop(timeout=30))
    worker.start()
    web.start()
    say(f"started worker (pid {worker.pid}) and web (pid {web.pid}) on {HOST}:{port}")
    web.wait_for_http(f"http://{HOST}:{port}/healthz", timeout=60)
    worker.wait_for_log("ready.", timeout=60)

    # Forked before this process opens any connection of its own.
    config = BackgroundConfig(
        port=port,
        keys=bg_keys,
        threads=args.bg_threads,
        batch_size=args.batch_size,
        ts_base=float(int(time.time()) - 3600),
    )
    background = Background(config)
    cleanup.append(background.close)
    stream = None
    if args.continuous:  # forked before this process opens any connection of its own
        stream = Stream(HOST, port, [probe.key for probe in probes], period=args.stream_ms / 1000)
        cleanup.append(stream.stop)
    prober = variant.prepare(env, bench_db, rule_id, probes, args, port)
    cleanup.append(prober.close)
    for probe in probes:  # creates every probe series; each evaluation finds nothing
        prober.reset(probe)

    groups = {"web": [web.pid], "worker": [worker.pid], "background": [background.pid]}
    if stream is not None:
        stream.start()
        groups["stream"] = [stream.pid or 0]
        say(f"stream: {len(probes)} sources, a batch each every {args.stream_ms:g} ms")
    # Each attempt first waits until the machine is quiet; one that sees another
    # benchmark or test run start pauses the load (not to disturb it) and starts over.
    for attempt in range(1, args.attempts + 1):
        wait_for_quiet(CpuMeter(groups, servers), args.quiet_wait)
        sampler = QueueSampler(args.redis_port, args.redis_db)
        try:
            return measure(
                args,
                Setup(background, prober, probes, worker, groups, servers, sampler, stream),
                strict=attempt < args.attempts,
                key=variant.key,
            )
        except Disturbed as exc:
            say(f"{exc}: pausing the background load and starting over")
        finally:
            sampler.finish()
            if background.paced:
                background.stop_paced()
    raise AssertionError("unreachable: the last attempt is not strict")


class Disturbed(Exception):
    """Another benchmark, test run or program took CPU during a measurement."""


def check_quiet() -> None:
    others = other_benchmarks()
    if others:
        raise Disturbed(f"another benchmark or test run started ({others[0][:120]})")


@dataclass
class Setup:
    background: Background
    prober: Prober
    probes: list[Probe]
    worker: ManagedProcess
    groups: dict[str, list[int]]
    servers: dict[str, str]
    sampler: QueueSampler
    stream: Stream | None = None


def measure(
    args: argparse.Namespace, setup: Setup, *, strict: bool, key: str = ALERT_ROW.key
) -> dict[str, float]:
    """Capacity, then the background load and the firings; `strict`: raise Disturbed
    when another program gets in the way (else warn and carry on)."""
    background, prober, probes = setup.background, setup.prober, setup.probes
    capacity, busy = measure_capacity(background, PhaseMeter(setup.groups, setup.servers), args)
    if not setup.sampler.drained(60):
        say("warning: the ingest queue did not drain within 60s of the capacity phase")
    if busy > 0.3 and strict:
        raise Disturbed(f"other programs kept {busy:.2f} cores busy")
    check = check_quiet if strict else None
    rate = args.load * capacity.rate / args.batch_size
    background.start_paced(rate)
    paced_from = time.monotonic()
    say(f"background: {rate:.1f} batches/s ({rate * args.batch_size:,.0f} samples/s target)")
    time.sleep(3.0)
    if check is not None:
        check()

    # One round over every probe source warms every process up; then the measured ones.
    gap = (args.gap_ms[0] / 1000, args.gap_ms[1] / 1000)
    warm, warm_timeouts, _ = run_firings(prober, probes, len(probes), gap, "warm-up", check)
    warm_latencies = [f.latency_ms for f in warm]
    say(f"warm-up: {len(warm)} firings, {warm_timeouts} timeouts, {spread(warm_latencies)} ms")
    meter = PhaseMeter(setup.groups, setup.servers)
    log_path = setup.worker.log_path
    log_from = log_size(log_path)
    setup.sampler.start()
    meter.start()
    firings_from = time.monotonic()
    firings, timeouts, stuck = run_firings(prober, probes, args.firings, gap, "firings", check)
    firings_to = time.monotonic()
    usage = meter.stop()
    lengths = setup.sampler.finish()
    log_to = log_size(log_path)
    results = background.stop_paced()
    paced = tally(results, firings_from, firings_to)
    overall = tally(results, paced_from, firings_to)
    if not setup.worker.alive():
        raise RuntimeError("the worker died during the run")
    if check is not None:
        check()
        if usage["other"] > 0.3:
            raise Disturbed(f"other programs kept {usage['other']:.2f} cores busy")
    else:
        others = other_benchmarks()
        if others or usage["other"] > 0.3:
            say(
                f"warning: disturbed: other benchmarks {others or 'none'}, other programs "
                f"kept {usage['other']:.2f} cores busy"
            )

    latencies = [f.latency_ms for f in firings]
    say(
        f"firings: {len(firings)} in {firings_to - firings_from:.1f}s, {timeouts} timeouts, "
        f"{stuck} resets that did not resolve within {args.timeout:.0f}s"
    )
    say(f"{key.replace('_', ' ')} (ms): {spread(latencies)}")
    say(f"  to evaluation (POST until eval start): {spread([f.start_ms for f in firings])}")
    say(f"  evaluate (eval start until seen):      {spread([f.evaluate_ms for f in firings])}")
    say(f"  api (POST until answered):             {spread([f.api_ms for f in firings])}")
    sends = [f.send_start_ms for f in firings if f.send_start_ms is not None]
    if sends:
        say(f"  to the send (POST until the worker began sending): {spread(sends)}")
    slowest = sorted(firings, key=lambda f: f.latency_ms)[-5:]
    say(
        "  slowest (latency = to evaluation + evaluate; api): "
        + "; ".join(
            f"{f.latency_ms:.1f} = {f.start_ms:.1f} + {f.evaluate_ms:.1f}; {f.api_ms:.1f}"
            for f in reversed(slowest)
        )
    )
    durations = task_durations(log_path, log_from, log_to)
    say(f"worker: {len(durations)} evaluate_source tasks meanwhile, ms: {spread(durations)}")
    if lengths:
        nonempty = sum(1 for n in lengths if n) / len(lengths)
        say(
            f"ingest queue (every 10 ms): mean {sum(lengths) / len(lengths):.2f}, "
            f"max {max(lengths)}, non-empty {nonempty:.0%} of the time"
        )
    say(
        f"background during the firings: {paced.rate:,.0f} samples/s "
        f"({paced.rate / capacity.rate:.0%} of capacity; {overall.rate:,.0f} since it "
        f"started), errors {dict(paced.errors) or 0}"
    )
    say(cpu_line(usage))
    if paced.errors:
        say(f"warning: background errors: {paced.first_error}")
    figures = {
        f"{key}_p50_ms": round(percentile(latencies, 50), 1),
        f"{key}_p99_ms": round(percentile(latencies, 99), 1),
        "firings": len(firings),
        "timeouts": timeouts,
        "background_samples_per_s": round(paced.rate, 1),
        "api_capacity_samples_per_s": round(capacity.rate, 1),
    }
    if setup.stream is not None:
        streamed = setup.stream.stop()
        if streamed is None:
            raise RuntimeError("the stream process died during the run")
        say(
            f"stream: {streamed.batches_per_s:,.1f} batches/s, {streamed.errors} errors, "
            f"{streamed.late} sends more than a period late"
        )
        figures["stream_batches_per_s"] = round(streamed.batches_per_s, 1)
    return figures


def main(
    argv: list[str] | None = None, variant: Variant = ALERT_ROW, name: str = "alert-latency"
) -> int:
    args = parse_args(argv, variant.doc)
    return run_with_cleanup(
        name,
        lambda workdir, cleanup: run(args, workdir, cleanup, variant),
        keep_logs=args.keep_logs,
    )


if __name__ == "__main__":
    sys.exit(main())
