"""Event stream latency: how long an alert change takes to reach 200 open streams.

The production web process (`python -m monitoring_site.launcher web`, its default
workers and threads, DEBUG off) runs against a fresh PostgreSQL database and its own
Redis databases. --clients Server-Sent Events clients (httpx, one connection each, in
this process) open `GET /api/v1/stream` with a Viewer's token. Then, --changes times, an
Operator acknowledges a firing alert through the API (`POST
/api/v1/alerts/{id}/acknowledge`), --gap seconds apart (the first --warmup ones are not
counted), and every client waits for its `alert` event of that change. Two latencies
per client and change:

- stream: from the change's publication (its commit: the event is appended to the
  Redis stream then, and the entry's id is Redis' clock in milliseconds) until the
  event arrived (this machine's clock, which Redis shares): what the stream adds;
- request: from just before the operator's request was sent until the event arrived:
  the request's own work (the acknowledgement, its audit, its routing) included.

A client that never gets a change counts as --timeout for both, and as missed. The run
first waits (up to --quiet-wait seconds) until no other benchmark or test run goes on:
on a shared two-core machine their work would be measured too.

    .venv/bin/python -m bench.stream [--clients 200] [--changes 30]

The last line printed is JSON:
{"clients": 200, "stream_p99_ms": .., "stream_p50_ms": .., "stream_max_ms": ..,
 "request_p99_ms": .., "changes": .., "deliveries": .., "missed": .., "web_workers": ..}
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

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
from bench.alert_latency import percentile, wait_for_quiet
from bench.sse import Listener, is_event

HOST = "127.0.0.1"

SETUP = """
import django
django.setup()
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from django.utils import timezone
from alerts.models import Alert, Rule
from metrics.services import source_create

viewer = User.objects.create_user("bench-viewer")
operator = User.objects.create_user("bench-operator")
for user, codenames in ((viewer, ["view_alert"]), (operator, ["view_alert", "change_alert"])):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
source, _ = source_create(name="bench-stream-bot")
rule = Rule.objects.create(name="bench stream drawdown", metric="drawdown_pct")
now = timezone.now()
alert = Alert.objects.create(
    rule=rule, source=source, fingerprint="bench-stream", labels={}, value=12.5,
    peak_value=12.5, threshold_value=10.0, comparison=">", message="drawdown 12.5 > 10",
    count=1, first_seen=now, fired_at=now, last_seen=now, state="firing", severity=30,
)
print(Token.objects.create(user=viewer).key, Token.objects.create(user=operator).key, alert.pk)
"""


@dataclass(frozen=True)
class Latencies:
    """Milliseconds, one per client and change: from publication, and from the request."""

    stream: list[float]
    request: list[float]


async def measure(
    base: str, viewer: str, operator: str, alert_id: int, args: argparse.Namespace
) -> tuple[Latencies, int, int]:
    """Open the streams, make the changes; latencies (ms), deliveries counted, missed."""
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=10)
    client = httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits)
    headers = {"Authorization": f"Token {viewer}"}
    listeners = [Listener(f"{base}/api/v1/stream", dict(headers)) for _ in range(args.clients)]
    tasks = [asyncio.create_task(listener.run(client)) for listener in listeners]
    stream: list[float] = []
    request: list[float] = []
    delivered = missed = 0
    try:
        answered = await asyncio.gather(*(listener.answered(60) for listener in listeners))
        statuses = {listener.status for listener in listeners}
        if not all(answered) or statuses != {200}:
            raise RuntimeError(f"streams not all open: statuses {statuses}")
        say(f"{args.clients} streams open")
        acting = {"Authorization": f"Token {operator}"}
        for change in range(args.warmup + args.changes):
            started = time.perf_counter()
            answer = await client.post(
                f"{base}/api/v1/alerts/{alert_id}/acknowledge",
                json={"note": f"bench change {change}"},
                headers=acting,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"acknowledge answered {answer.status_code}: {answer.text}")
            match = is_event("alert", alert_id=alert_id, change="acknowledged")

            def this_change(event: Any, match: Any = match, after: float = started) -> bool:
                return bool(match(event)) and event.at >= after

            got = await asyncio.gather(
                *(listener.wait_for(this_change, args.timeout) for listener in listeners)
            )
            if change < args.warmup:
                continue
            for event in got:
                if event is None:
                    missed += 1
                    stream.append(args.timeout * 1000)
                    request.append(args.timeout * 1000)
                else:
                    delivered += 1
                    published_ms = int(str(event.id).split("-")[0])
                    stream.append(max(0.0, event.wall * 1000 - published_ms))
                    request.append((event.at - started) * 1000)
            for listener in listeners:  # keep memory flat over many changes
                listener.events.clear()
            await asyncio.sleep(args.gap)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
    return Latencies(stream, request), delivered, missed


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
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus")}
    if args.web_workers:
        extra["WEB_CONCURRENCY"] = str(args.web_workers)
    env = production_env(
        database_url=f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}",
        redis_host=HOST, redis_port=args.redis_port, broker_db=args.redis_db,
        cache_db=args.cache_db, bind=f"{HOST}:{port}", **extra,
    )  # fmt: skip
    say("migrating")
    run_checked([sys.executable, "manage.py", "migrate", "--noinput"], env, 300, "migrate")
    out = run_checked([sys.executable, "-c", SETUP], env, timeout=120, what="setting up")
    viewer, operator, alert_id = out.strip().splitlines()[-1].split()
    web = ManagedProcess(
        "web", [sys.executable, "-m", "monitoring_site.launcher", "web"], env, workdir / "web.log"
    )
    cleanup.append(lambda: web.stop(timeout=30))
    web.start()
    web.wait_for_http(f"http://{HOST}:{port}/healthz", timeout=60)
    say(f"web (pid {web.pid}) on {HOST}:{port}; logs in {workdir}")

    wait_for_quiet(CpuMeter({"web": [web.pid]}, {}), args.quiet_wait)
    latencies, delivered, missed = asyncio.run(
        measure(f"http://{HOST}:{port}", viewer, operator, int(alert_id), args)
    )
    stream, request = latencies.stream, latencies.request
    p50, p99 = percentile(stream, 50), percentile(stream, 99)
    say(
        f"{delivered} deliveries, {missed} missed: from publication p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms; from the request p99 {percentile(request, 99):.1f} ms"
    )
    return {
        "clients": args.clients,
        "stream_p99_ms": round(p99, 1),
        "stream_p50_ms": round(p50, 1),
        "stream_max_ms": round(max(stream), 1),
        "request_p99_ms": round(percentile(request, 99), 1),
        "changes": args.changes,
        "deliveries": delivered,
        "missed": missed,
        "web_workers": args.web_workers or "default",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200, help="open streams")
    parser.add_argument("--changes", type=int, default=30, help="alert changes timed")
    parser.add_argument("--warmup", type=int, default=3, help="changes made first, not timed")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between changes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a client may wait")
    parser.add_argument(
        "--web-workers", type=int, default=0, help="WEB_CONCURRENCY (0: the server's default)"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=600, help="seconds to wait for a quiet machine"
    )
    parser.add_argument("--database", default="tradewatch_bench_stream")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=2, help="Celery broker database")
    parser.add_argument("--cache-db", type=int, default=3, help="Django cache database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_with_cleanup(
        "stream", lambda workdir, cleanup: run(args, workdir, cleanup), keep_logs=False
    )


if __name__ == "__main__":
    sys.exit(main())
