"""Rule evaluation: 1,000 sources x 31 rules, fresh data each cycle, on one process.

Creates a throw-away database, installs the rules `migrate` installs (the trading pack's
30, the health rule and the 4 self-monitoring rules of the system source: 35) plus one
custom rule, gives every source fresh samples, events (decisions, orders, market data:
the pack's "alive but not trading" rules judge them) and heartbeats before each cycle,
then times `all_sources_evaluate()` - what beat's periodic evaluation runs on one worker.
Each source is judged by the trading pack and the custom rule (31); the health rule is
judged by the health runner, the self-monitoring rules on the system source only. The
`rules` figure counts every enabled rule (36).

    .venv/bin/python -m bench.evaluation [--sources 1000] [--cycles 5]

Last line: {"evaluations_per_s": .., "cycle_s": .., ...}. Goal: cycle_s <= 2.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid

from bench._support import create_database, drop_database, postgres_conninfo

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()

    name = f"tradewatch_bench_eval_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    try:
        result = run(args.sources, args.cycles)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def run(source_count: int, cycles: int) -> dict[str, float]:
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from alerts.evaluation import all_sources_evaluate, forget_rules_cache
    from alerts.models import Alert, Rule, Threshold
    from metrics.ingest import event_ingest, heartbeat_record, metric_ingest
    from metrics.models import Source
    from metrics.validation import EventIn, HeartbeatIn, Sample

    print("migrating (installs the trading pack)...", flush=True)
    call_command("migrate", verbosity=0)
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

    durations = []
    evaluations = 0
    for cycle in range(cycles + 1):
        feed(time.perf_counter())
        forget_rules_cache()
        started = time.perf_counter()
        summary = all_sources_evaluate()
        elapsed = time.perf_counter() - started
        label = "warm-up" if cycle == 0 else f"cycle {cycle}"
        print(
            f"{label}: {summary.evaluations} evaluations of {summary.sources} sources in "
            f"{elapsed:.3f} s ({summary.applied} touched alerts) {dict(summary.by_status)}",
            flush=True,
        )
        if cycle:
            durations.append(elapsed)
            evaluations = summary.evaluations
    cycle_s = statistics.median(durations)
    return {
        "evaluations_per_s": round(evaluations / cycle_s),
        "cycle_s": round(cycle_s, 3),
        "cycle_max_s": round(max(durations), 3),
        "sources": len(sources),
        "rules": rules,
        "open_alerts": Alert.objects.exclude(state="resolved").count(),
    }


if __name__ == "__main__":
    sys.exit(main())
