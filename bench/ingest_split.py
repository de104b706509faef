"""Where an ingestion request's CPU goes, step by step, in one web process.

Creates a throw-away database with one source, then posts, through Django's WSGI
handler in this process (every middleware, the DRF view, the ingest service, the cache
and the broker, as the web server runs them; no HTTP server and no network client):

- `large`: --batches batches of --batch-size samples shaped as `bench.ingest` sends them
  (28 series of a trading bot, equity among them, so derivation is queued each batch);
- `small`: --requests batches of one sample no rule reads (`bench_probe`): the
  per-request overhead alone;
- `small_watched`: --requests batches of one sample of `leverage`, which the trading
  rule pack watches: evaluated in the request, as `bench.alert_latency` sends them.

Each step's CPU time (this thread's, exclusive of the steps it calls) is summed by
wrapping the function that does it; what is left is the framework: the WSGI handler,
middleware, DRF's dispatch and the response. Steps: parse (JSON to Python), validate,
auth (the API key), rate limit, generations (one cache read of every generation),
series (series ids, rows), write (COPY, or one upsert statement for a small batch),
latest values, derivation request, commit, flags (the evaluation request after commit,
one Redis round trip), evaluation on arrival, queue (the broker), trading state,
counters (Prometheus), render (the JSON answer).

    .venv/bin/python -m bench.ingest_split [--batches 300] [--requests 2000] \
        [--redis-port 6379 --cache-db 8 --broker-db 9]

Last line: {"large_cpu_us_per_sample": .., "small_cpu_us_per_request": .., ...,
"large_split_us_per_sample": {...}, "small_split_us_per_request": {...}}
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import (
    create_database,
    drop_database,
    postgres_conninfo,
    redis_db_size,
    say,
)

HOST = "127.0.0.1"


class StepMeter:
    """Exclusive CPU time (this thread) and wall time per step, by wrapping functions."""

    def __init__(self) -> None:
        self.cpu: dict[str, int] = defaultdict(int)
        self.wall: dict[str, int] = defaultdict(int)
        self._stack: list[list[int]] = []  # [cpu child time, wall child time]
        self.active = False

    def reset(self) -> None:
        self.cpu.clear()
        self.wall.clear()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        if not self.active:
            yield
            return
        cpu0, wall0 = time.thread_time_ns(), time.perf_counter_ns()
        self._stack.append([0, 0])
        try:
            yield
        finally:
            cpu, wall = time.thread_time_ns() - cpu0, time.perf_counter_ns() - wall0
            child_cpu, child_wall = self._stack.pop()
            self.cpu[name] += cpu - child_cpu
            self.wall[name] += wall - child_wall
            if self._stack:
                self._stack[-1][0] += cpu
                self._stack[-1][1] += wall

    def wrap(self, owner: Any, attribute: str, name: str) -> bool:
        """Time every call of `owner.attribute` as step `name`; False if there is none."""
        original = owner.__dict__.get(attribute) if isinstance(owner, type) else None
        if original is None:
            original = getattr(owner, attribute, None)
        if original is None:
            return False
        if isinstance(original, (staticmethod, classmethod)):
            return False
        if isinstance(original, property):
            getter = original.fget
            assert getter is not None

            def timed_get(this: Any) -> Any:
                with self.step(name):
                    return getter(this)

            setattr(owner, attribute, property(timed_get))
            return True
        meter = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            with meter.step(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        return True

    def wrap_context(self, owner: Any, attribute: str, name: str) -> bool:
        """Time the entry and exit of the context manager `owner.attribute()` returns."""
        original = getattr(owner, attribute, None)
        if original is None:
            return False
        meter = self

        @contextlib.contextmanager
        def timed() -> Iterator[None]:
            manager = original()
            with meter.step(name):
                manager.__enter__()
            try:
                yield
            finally:
                with meter.step(name):
                    manager.__exit__(None, None, None)

        setattr(owner, attribute, timed)
        return True


# (module, attribute path, step): a missing one is skipped, so the same list serves
# every version of the code.
STEPS = [
    ("metrics.api.views", "body_parsed", "parse"),
    ("metrics.api.parsers", "StrictJSONParser.parse", "parse"),
    ("metrics.validation", "validate_samples", "validate"),
    ("metrics.api.views", "MetricsIngestView.validate", "validate"),
    ("metrics.decoding", "samples_decoded", "parse+validate"),
    ("metrics.authentication", "SourceAPIKeyAuthentication.authenticate", "auth"),
    ("metrics.authentication", "HookKeyAuthentication.authenticate", "auth"),
    ("metrics.api.throttling", "SourceIngestThrottle.allow_request", "rate limit"),
    ("metrics.ingest", "_resolve_series", "series"),
    ("metrics.ingest", "_rows_of", "series"),
    ("metrics.ingest", "_known_series", "series"),
    ("metrics.ingest", "_copy_samples", "write"),
    ("metrics.ingest", "_write_together", "write"),
    ("metrics.ingest", "_update_latest", "latest values"),
    ("metrics.ingest", "_derivation_request", "derivation request"),
    ("metrics.changes", "source_changed", "flags"),
    ("alerts.trigger", "_evaluate_here", "evaluation on arrival"),
    ("alerts.trigger", "_queue", "queue"),
    ("metrics.control", "trading_state", "trading state"),
    ("metrics.instrumentation", "record_ingested", "counters"),
    ("metrics.instrumentation", "observe_ingest_seconds", "counters"),
    ("rest_framework.renderers", "JSONRenderer.render", "render"),
]


def install(meter: StepMeter) -> list[str]:
    import importlib

    from django.db.backends.postgresql.base import DatabaseWrapper

    installed = []
    for module_name, path, step in STEPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: Any = module
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        if owner is not None and meter.wrap(owner, attribute, step):
            installed.append(f"{module_name}.{path}")
    meter.wrap(DatabaseWrapper, "commit", "commit")
    import metrics.api.views as views

    if meter.wrap_context(views, "generations_read_once", "generations"):
        installed.append("metrics.api.views.generations_read_once")
    return installed


def environ(path: str, body: bytes, key: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": HOST,
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": HOST,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Api-Key {key}",
        "REMOTE_ADDR": HOST,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def post_all(
    handler: Callable[..., Any], key: str, bodies: list[bytes], meter: StepMeter
) -> tuple[int, int, list[int]]:
    """Post every body; return (total CPU ns, total wall ns, wall ns per request)."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    walls = []
    gc.collect()
    cpu0 = time.thread_time_ns()
    wall0 = time.perf_counter_ns()
    meter.active = True
    for body in bodies:
        began = time.perf_counter_ns()
        result = handler(environ("/api/v1/metrics", body, key), start_response)
        b"".join(result)
        if hasattr(result, "close"):
            result.close()
        walls.append(time.perf_counter_ns() - began)
        status = statuses.pop()
        if not status.startswith("202"):
            raise RuntimeError(f"answered {status}")
    meter.active = False
    return time.thread_time_ns() - cpu0, time.perf_counter_ns() - wall0, walls


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def scenario(
    name: str,
    meter: StepMeter,
    handler: Callable[..., Any],
    key: str,
    bodies: list[bytes],
    per: int,
    unit: str,
) -> dict[str, Any]:
    """Post `bodies` metered; the split per `unit` (`per` items per body)."""
    meter.reset()
    cpu, wall, walls = post_all(handler, key, bodies, meter)
    items = len(bodies) * per
    split = {step: round(ns / items / 1000, 3) for step, ns in sorted(meter.cpu.items())}
    split["framework"] = round((cpu - sum(meter.cpu.values())) / items / 1000, 3)
    say(
        f"{name}: {len(bodies)} requests, {cpu / items / 1000:.2f} us CPU per {unit} "
        f"({wall / items / 1000:.2f} us wall); wall per request p50 "
        f"{percentile(walls, 0.5):.0f} us, p99 {percentile(walls, 0.99):.0f} us"
    )
    for step, us in sorted(split.items(), key=lambda item: -item[1]):
        say(f"  {step:<22} {us:8.3f} us CPU per {unit}")
    return {
        f"{name}_cpu_us_per_{unit}": round(cpu / items / 1000, 3),
        f"{name}_wall_p50_us": round(percentile(walls, 0.5), 1),
        f"{name}_wall_p99_us": round(percentile(walls, 0.99), 1),
        f"{name}_split_us_per_{unit}": split,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    import bench.ingest as shape_of
    from metrics.services import source_create

    call_command("migrate", verbosity=0)
    cache.clear()
    _, key = source_create(name="bench-bot-000", kind="bot", tags=["bench"])
    handler = WSGIHandler()
    meter = StepMeter()
    wrapped = install(meter)
    say(f"steps timed: {', '.join(wrapped)}")

    series = shape_of.series_definitions()
    shape = shape_of.Shape(1, args.batch_size, len(series))
    t0 = float(int(time.time()) - 180)
    config = shape_of.SenderConfig(0, [key], shape, t0, 1, 60.0)
    warm = 20
    large = [shape_of.encode_batch(config, b)[1] for b in range(warm + args.batches)]
    post_all(handler, key, large[:warm], meter)  # series created, caches filled
    result: dict[str, Any] = {"batch_size": args.batch_size}
    result |= scenario("large", meter, handler, key, large[warm:], args.batch_size, "sample")

    probe = b'{"samples":[{"name":"bench_probe","value":1}]}'
    watched = b'{"samples":[{"name":"leverage","value":1}]}'
    post_all(handler, key, [probe, watched] * 50, meter)
    result |= scenario("small", meter, handler, key, [probe] * args.requests, 1, "request")
    result |= scenario(
        "small_watched", meter, handler, key, [watched] * args.requests, 1, "request"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pg-host", default=HOST)
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--redis-port", type=int, default=6379)
    # Not 0/1 (development), 10/11 (bench.ingest), 12/13 (bench.evaluation), 14/15 (tests).
    parser.add_argument("--cache-db", type=int, default=8)
    parser.add_argument("--broker-db", type=int, default=9)
    args = parser.parse_args(argv)

    for db in (args.cache_db, args.broker_db):
        if redis_db_size(HOST, args.redis_port, db):
            raise SystemExit(f"Redis database {db} is not empty: choose another")
    admin = postgres_conninfo(args.pg_host, args.pg_port, args.pg_user, "postgres")
    name = f"tradewatch_bench_split_{uuid.uuid4().hex[:8]}"
    create_database(admin, name)
    redis_at = f"{HOST}:{args.redis_port}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "monitoring_site.settings",
            "DATABASE_URL": f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{name}",
            "CELERY_BROKER_URL": f"redis://{redis_at}/{args.broker_db}",
            "CACHE_URL": f"rediscache://{redis_at}/{args.cache_db}",
            "DEBUG": "False",
            "LOG_LEVEL": "CRITICAL",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "SECURE_SSL_REDIRECT": "False",
            "TRADEWATCH_INGEST_RATE_PER_MINUTE": "100000000",
        }
    )
    try:
        result = run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(admin, name)
        # Checked empty at the start: whatever is there now is this run's.
        import redis

        for db in (args.cache_db, args.broker_db):
            redis.Redis(host=HOST, port=args.redis_port, db=db).flushdb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
