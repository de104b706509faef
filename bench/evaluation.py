"""Rule evaluation: 1,000 sources x 31 rules, fresh data each cycle, one or more processes.

Creates a throw-away database, installs the rules `migrate` installs (the trading pack's
30, the health rule and the 4 self-monitoring rules of the system source: 35) plus one
custom rule, gives every source fresh samples, events (decisions, orders, market data:
the pack's "alive but not trading" rules judge them) and heartbeats before each cycle,
then times `all_sources_evaluate()`: every source evaluated in this one process.
Each source is judged by the trading pack and the custom rule (31); the health rule is
judged by the health runner, the self-monitoring rules on the system source only. The
`rules` figure counts every enabled rule (36). The feed itself queues no evaluation (the
source-changed handlers are off in this process): only the cycle is measured.

With `--workers N`, beat's own path is measured instead, with one and with N worker
processes in the same run: the cycle is shared out in parts
(`alerts.tasks.evaluation_parts_send`, what beat's task does) to real Celery worker
processes (each separate, as on separate hosts, one pool process each), timed from
sending the parts to the last part's result. The one-worker and N-worker cycles take
turns (the first worker also consumes a queue of its own, where the one-worker cycles'
parts go), so both meet the same other work on a shared machine.

    .venv/bin/python -m bench.evaluation [--sources 1000] [--cycles 5] [--workers N]
                                         [--part-sources 100]

Last line: {"evaluations_per_s": .., "cycle_s": .., ...}; with `--workers N` also
"workers", "part_sources", "one_worker_evaluations_per_s", "one_worker_cycle_s" and
"speedup_vs_one" (the median over rounds of one worker's cycle time over N workers').
Goals: cycle_s <= 2; speedup_vs_one >= 1.5 for two workers on a 2-core machine
(PostgreSQL shares the cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench._support import (
    ManagedProcess,
    create_database,
    drop_database,
    postgres_conninfo,
    say,
)

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument(
        "--workers", type=int, default=0,
        help="measure beat's shared-out cycle with 1, then N worker processes",
    )  # fmt: skip
    parser.add_argument(
        "--part-sources", type=int, default=0, help="sources per shared-out part (default: beat's)"
    )
    args = parser.parse_args()

    name = f"tradewatch_bench_eval_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    try:
        result = run(args.sources, args.cycles, args.workers, args.part_sources)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def run(source_count: int, cycles: int, workers: int, part_sources: int) -> dict[str, float]:
    import django

    django.setup()
    from datetime import timedelta

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from alerts.evaluation import all_sources_evaluate
    from alerts.models import Alert, Rule, Threshold
    from metrics.ingest import event_ingest, heartbeat_record, metric_ingest
    from metrics.models import Source
    from metrics.validation import EventIn, HeartbeatIn, Sample

    print("migrating (installs the trading pack)...", flush=True)
    call_command("migrate", verbosity=0)
    # The feed below stores data as ingestion does; its batches must not queue (or run)
    # evaluations of their own: the cycle alone is measured.
    settings.TRADEWATCH_SOURCE_CHANGED_HANDLERS = []
    custom = Rule.objects.create(
        name="Spread too wide", metric="spread_bps", aggregation="avg",
        window=timedelta(minutes=5),
    )  # fmt: skip
    Threshold.objects.create(rule=custom, severity=30, comparison=">", value=50)
    rules = Rule.objects.filter(enabled=True).count()
    print(f"{rules} rules", flush=True)
    sources = Source.objects.bulk_create(Source(name=f"bot-{i:04d}") for i in range(source_count))

    # Healthy ranges, and what a troubled source shows (it breaches several rules).
    last_value_metrics = {
        "drawdown_pct": ((0, 6), 24), "daily_drawdown_pct": ((0, 3), 7),
        "weekly_drawdown_pct": ((0, 6), 12), "daily_pnl": ((-200, 800), -5000),
        "win_rate_pct": ((45, 70), 20), "trade_count": ((20, 500), 300),
        "error_rate_pct": ((0, 3), 25), "largest_position_pct": ((5, 30), 80),
        "trades_last_5m": ((0, 6), 30), "consecutive_losses": ((0, 4), 12),
        "leverage": ((0.5, 2), 5), "open_positions": ((0, 6), 20),
        "rate_limit_remaining": ((200, 1200), 2),
    }  # fmt: skip
    windowed_metrics = [
        "exchange_latency_ms",
        "host_cpu_pct",
        "host_memory_pct",
        "host_disk_pct",
        "spread_bps",
    ]
    rng = random.Random(7)
    # Most sources healthy, a few in trouble (the same ones each cycle, as in life).
    troubled = {source.pk for source in rng.sample(sources, k=max(1, len(sources) * 3 // 100))}

    def feed(cycle_start: float) -> None:
        now = timezone.now()
        for source in sources:
            bad = source.pk in troubled
            samples = [
                Sample(metric, {}, "{}", now, bad_value if bad else rng.uniform(*healthy))
                for metric, (healthy, bad_value) in last_value_metrics.items()
            ]
            for metric in windowed_metrics:
                for k in range(4):
                    samples.append(
                        Sample(metric, {}, "{}", now - timedelta(seconds=15 * k + 1),
                               rng.uniform(10, 40))
                    )  # fmt: skip
            samples.append(Sample("market_data_age_ms", {}, "{}", now, rng.uniform(5, 900)))
            metric_ingest(source=source, samples=samples, evaluate=False)
            heartbeat_record(source=source, heartbeat=HeartbeatIn("ok", {}, now))
            events = [EventIn(kind, "", {}, now) for kind in ("decision", "order_submitted")]
            if bad:
                events.append(EventIn("provider_failure", "", {}, now))
            event_ingest(source=source, events=events)
        print(
            f"  fed {len(sources)} sources in {time.perf_counter() - cycle_start:.1f} s", flush=True
        )

    def in_process() -> tuple[int, int]:
        summary = all_sources_evaluate()
        return summary.evaluations, summary.applied

    if workers < 1:
        [(durations, evaluations)] = timed_cycles(cycles, feed, in_process)
        cycle_s, cycle_max_s = statistics.median(durations), max(durations)
        result: dict[str, float] = {"evaluations_per_s": round(evaluations / cycle_s)}
    else:
        from alerts.tasks import EVALUATION_PART_SOURCES

        size = part_sources or EVALUATION_PART_SOURCES
        ids = [source.pk for source in sources]
        (one, _), (many, evaluations) = shared_out_cycles(ids, size, workers, cycles, feed)
        cycle_s, cycle_max_s = statistics.median(many), max(many)
        one_s = statistics.median(one)
        result = {
            "evaluations_per_s": round(evaluations / cycle_s),
            "workers": workers,
            "part_sources": size,
            "one_worker_evaluations_per_s": round(evaluations / one_s),
            "one_worker_cycle_s": round(one_s, 3),
            # Each round's one-worker cycle over its N-worker cycle, the median of those:
            # the two ran back to back, so other work on the machine weighs on both alike.
            "speedup_vs_one": round(
                statistics.median(a / b for a, b in zip(one, many, strict=True)), 2
            ),
        }
    return {
        **result,
        "cycle_s": round(cycle_s, 3),
        "cycle_max_s": round(cycle_max_s, 3),
        "sources": len(sources),
        "rules": rules,
        "open_alerts": Alert.objects.exclude(state="resolved").count(),
    }


Cycle = Callable[[], tuple[int, int]]
# (seconds of each timed cycle, evaluations of one cycle)
Timing = tuple[list[float], int]


def timed_cycles(cycles: int, feed: Callable[[float], None], *kinds: Cycle) -> list[Timing]:
    """Feed, then run each kind of cycle in turn (fresh data before each), a warm-up and
    `cycles` timed rounds: a timing per kind. Taking turns, every kind meets the same
    other work on a shared machine."""
    from alerts.evaluation import forget_rules_cache

    durations: list[list[float]] = [[] for _ in kinds]
    evaluations = [0] * len(kinds)
    for number in range(cycles + 1):
        for index, cycle in enumerate(kinds):
            feed(time.perf_counter())
            forget_rules_cache()
            started = time.perf_counter()
            done, applied = cycle()
            elapsed = time.perf_counter() - started
            label = "warm-up" if number == 0 else f"cycle {number}"
            print(
                f"{label}{f' ({index + 1})' if len(kinds) > 1 else ''}: {done} evaluations "
                f"in {elapsed:.3f} s ({applied} touched alerts)",
                flush=True,
            )
            if number:
                durations[index].append(elapsed)
                evaluations[index] = done
    return list(zip(durations, evaluations, strict=True))


# The queue only the first worker consumes: the one-worker cycles' parts go there.
SOLO_QUEUE = "bench-evaluation-solo"


def shared_out_cycles(
    ids: list[int], size: int, workers: int, cycles: int, feed: Callable[[float], None]
) -> tuple[Timing, Timing]:
    """Beat's shared-out evaluation with one worker process, then with `workers`, in
    turns: all of them run throughout, the first also consuming a queue of its own, to
    which the one-worker cycles' parts are sent."""
    from alerts.tasks import evaluation_parts_send

    def shared_out(queue: str | None) -> Cycle:
        def cycle() -> tuple[int, int]:
            parts = evaluation_parts_send(ids, size=size, keep_results=True, queue=queue)
            done = [part.get(timeout=300) for part in parts]
            return sum(d["evaluations"] for d in done), sum(d["applied"] for d in done)

        return cycle

    say(f"1 and {workers} worker processes in turns, parts of {size} sources")
    with worker_processes(workers):
        one, many = timed_cycles(cycles, feed, shared_out(SOLO_QUEUE), shared_out(None))
    return one, many


@contextlib.contextmanager
def worker_processes(count: int) -> Iterator[list[ManagedProcess]]:
    """`count` Celery worker processes consuming `ingest` (one pool process each: a
    "worker process" of the README), as separate as separate hosts; stopped after."""
    from celery import current_app

    folder = Path(tempfile.mkdtemp(prefix="tradewatch-bench-eval-"))
    env: dict[str, Any] = {**os.environ, "TRADEWATCH_SELF_CHECK_SECONDS": "0"}

    def command(number: int) -> list[str]:
        queues = f"ingest,{SOLO_QUEUE}" if number == 0 else "ingest"
        return [
            sys.executable, "-m", "celery", "-A", "monitoring_site", "worker",
            "-Q", queues, "--concurrency", "1", "-n", f"bench-eval-{number}@%h",
            "--without-mingle", "--without-gossip", "--loglevel", "WARNING",
        ]  # fmt: skip

    started = [
        ManagedProcess(f"worker-{n}", command(n), env, folder / f"worker-{n}.log").start()
        for n in range(count)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(current_app.control.ping(timeout=1.0) or []) < count:
            if time.monotonic() > deadline or not all(w.alive() for w in started):
                raise RuntimeError("\n".join(w.log_tail() for w in started))
        yield started
    finally:
        for worker in started:
            worker.stop()
        for log in folder.iterdir():
            log.unlink()
        folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
