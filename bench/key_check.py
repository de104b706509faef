"""What refusing revoked keys at once costs a request: the key check, and log redaction.

Creates a throw-away database with one source and its key, then times, in one process
against the local PostgreSQL and the cache (Redis):

- `remembered`: a key this process checked lately, as every request of a trading system
  after its first: one cache read of the keys' generation, no query.
- `remembered_no_generation`: the same with the generation read replaced by a constant,
  as before keys had a generation (revocation then took up to 5 s).
- `database`: a key checked in the database (one query and the hash), as the first
  request after a revocation anywhere, or every request while the cache is away.
- `request` / `request_no_generation`: a whole heartbeat through Django's test client
  (middleware, authentication, throttling, ingestion), with and without the generation.
- `redact_*`: redacting one access-log line with a hook path, and one without.
- `access_line` / `access_line_plain`: one access line logged through a handler with the
  redacting filter, and without it.

    .venv/bin/python -m bench.key_check [--calls 20000] [--requests 2000]

Last line: {"remembered_p50_us": .., "remembered_no_generation_p50_us": .., ...}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import create_database, drop_database, postgres_conninfo

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()

    name = f"tradewatch_bench_keys_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    # Logging off: the figures are of the check, not of writing lines to a terminal.
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")
    # One source posting thousands of heartbeats: measure them, not the rate limit.
    os.environ.setdefault("TRADEWATCH_INGEST_RATE_PER_MINUTE", "100000000")
    try:
        result = run(args.calls, args.requests)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def timed(function: Callable[[], object], calls: int) -> list[int]:
    """Durations of `calls` calls of `function`, in nanoseconds (after a warm-up)."""
    for _ in range(min(calls // 10, 1000)):
        function()
    clock = time.perf_counter_ns
    timings = []
    gc.disable()
    try:
        for _ in range(calls):
            start = clock()
            function()
            timings.append(clock() - start)
    finally:
        gc.enable()
    return timings


def figures(prefix: str, timings_ns: list[int]) -> dict[str, float]:
    ordered = sorted(timings_ns)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000, 2)

    return {f"{prefix}_p50_us": at(0.50), f"{prefix}_p99_us": at(0.99)}


def run(calls: int, requests: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from core.generations import generation_current
    from metrics import authentication
    from metrics.services import source_create
    from monitoring_site.log_redaction import redact

    call_command("migrate", verbosity=0)
    cache.clear()
    _, plain_key = source_create(name="bench-bot")
    check = authentication.SourceAPIKeyAuthentication()

    def without_generation(key: str, *, what: str) -> object:
        return None

    def database() -> None:
        authentication.forget_known_keys()
        check.authenticate_key(plain_key)

    client = Client(HTTP_HOST="127.0.0.1")

    def request() -> None:
        response = client.post(
            "/api/v1/heartbeat",
            data=b'{"status": "ok"}',
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Api-Key {plain_key}",
        )
        assert response.status_code == 202, response.status_code

    result: dict[str, Any] = {"calls": calls, "requests": requests}
    # Alternate the variants in slices so drift on a shared machine hits both alike.
    slices = 5
    samples: dict[str, list[int]] = {name: [] for name in ("remembered", "no_generation")}
    request_samples: dict[str, list[int]] = {name: [] for name in ("remembered", "no_generation")}
    for _ in range(slices):
        for variant in ("remembered", "no_generation"):
            # The generation check as it is, or none: what remembering costs without it.
            generation = generation_current if variant == "remembered" else without_generation
            with mock.patch.object(authentication, "generation_current", generation):
                authentication.forget_known_keys()
                samples[variant] += timed(
                    lambda: check.authenticate_key(plain_key), calls // slices
                )
                request_samples[variant] += timed(request, requests // slices)
    result |= figures("remembered", samples["remembered"])
    result |= figures("remembered_no_generation", samples["no_generation"])
    result |= figures("database", timed(database, max(calls // 10, 100)))
    result |= figures("request", request_samples["remembered"])
    result |= figures("request_no_generation", request_samples["no_generation"])

    prefix = plain_key.partition(".")[0]
    hook_line = (
        f'127.0.0.1 - - [07/Dec/2026:10:47:55 +0000] "POST /api/v1/hooks/events/{plain_key}/ '
        'HTTP/1.1" 202 14 "-" "python-httpx/0.28.1"'
    )
    plain_line = (
        '127.0.0.1 - - [07/Dec/2026:10:47:55 +0000] "POST /api/v1/metrics HTTP/1.1" '
        '202 14 "-" "python-httpx/0.28.1"'
    )
    assert f"{prefix}.<redacted>" in redact(hook_line)
    result |= figures("redact_hook_line", timed(lambda: redact(hook_line), calls))
    result |= figures("redact_plain_line", timed(lambda: redact(plain_line), calls))
    result |= access_lines(calls)
    return result


def access_lines(calls: int) -> dict[str, float]:
    """One access line, as the web server logs it (`granian.access`, through Python
    logging) to a handler writing to /dev/null: with the redacting filter vs without."""
    import logging
    from functools import partial

    from monitoring_site.log_redaction import redact_handler

    result: dict[str, float] = {}
    with open(os.devnull, "w") as sink:
        for name, redacting in (("access_line", True), ("access_line_plain", False)):
            handler = logging.StreamHandler(sink)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            if redacting:
                redact_handler(handler)
            logger = logging.getLogger(f"bench.access.{name}")
            logger.handlers, logger.propagate = [handler], False
            logger.setLevel(logging.INFO)
            line = partial(
                logger.info, '%s - "%s %s %s" %d %.3f', "127.0.0.1", "POST",
                "/api/v1/metrics", "HTTP/1.1", 202, 1.5,
            )  # fmt: skip
            result |= figures(name, timed(line, calls))
    return result


if __name__ == "__main__":
    raise SystemExit(main())
