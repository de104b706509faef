"""The admin alerts list with a million alerts in the table.

Creates a throw-away database, fills it with 1,000,000 alerts (about 2 % open, the rest
resolved over 90 days, 100 sources, the trading pack's rules), then times the admin
changelist as a logged-in superuser: the first page (open alerts, the default), all
alerts, and filtered pages (severity, source, resolved).

    .venv/bin/python -m bench.admin_alerts [--alerts 1000000] [--requests 30]

Last line: {"alerts": .., "changelist_p50_ms": .., "changelist_p99_ms": .., ...}.
Goal: p50 < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

from bench._support import create_database, drop_database, postgres_conninfo

ADMIN = postgres_conninfo("127.0.0.1", 5432, "postgres", "postgres")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--show-queries", action="store_true", help="print each page's SQL with its time"
    )
    args = parser.parse_args()
    name = f"tradewatch_bench_admin_{uuid.uuid4().hex[:8]}"
    create_database(ADMIN, name)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    try:
        result = run(args.alerts, args.requests, show_queries=args.show_queries)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(ADMIN, name)
    print(json.dumps(result))
    return 0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(alert_count: int, requests: int, *, show_queries: bool = False) -> dict[str, object]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from metrics.models import Source

    print("migrating...", flush=True)
    call_command("migrate", verbosity=0)
    Source.objects.bulk_create(Source(name=f"bot-{i:03d}") for i in range(100))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # One statement, generated server-side: a million rows in seconds.
        cursor.execute(
            """
            INSERT INTO alerts_alert (
                fingerprint, rule_id, source_id, labels, state, severity, value, peak_value,
                threshold_value, comparison, message, count, first_seen, fired_at, last_seen,
                resolved_at, resolution, acknowledgement_note, inhibited
            )
            SELECT md5(i::text),
                   rules[1 + i %% array_length(rules, 1)],
                   sources[1 + (i * 7) %% array_length(sources, 1)],
                   '{}'::jsonb,
                   CASE WHEN i %% 50 = 0 THEN 'firing' WHEN i %% 50 = 1 THEN 'pending'
                        ELSE 'resolved' END,
                   (ARRAY[20, 30, 30, 30, 40, 50, 60])[1 + i %% 7],
                   (i %% 1000) / 10.0, (i %% 1000) / 10.0, 10, '>',
                   'generated alert ' || i, 1 + i %% 20,
                   now() - (i %% 7776000) * interval '1 second',
                   now() - (i %% 7776000) * interval '1 second',
                   now() - (i %% 7776000) * interval '1 second' + interval '5 minutes',
                   CASE WHEN i %% 50 > 1
                        THEN now() - (i %% 7776000) * interval '1 second' + interval '10 minutes'
                   END,
                   CASE WHEN i %% 50 > 1 THEN 'cleared' ELSE '' END,
                   '', false
            FROM generate_series(1, %s) AS i,
                 (SELECT array_agg(id) AS rules FROM alerts_rule) r,
                 (SELECT array_agg(id) AS sources FROM metrics_source) s
            """,
            [alert_count],
        )
        cursor.execute("VACUUM ANALYZE alerts_alert")
    print(f"inserted {alert_count} alerts in {time.perf_counter() - started:.1f} s", flush=True)

    user = User.objects.create_superuser("bench", "bench@localhost", "unused")
    client = Client()
    client.force_login(user)
    source_id = Source.objects.get(name="bot-042").pk
    one_source = f"state=resolved&source__id__exact={source_id}"
    pages = {
        "open alerts (default)": "/admin/alerts/alert/",
        "all alerts": "/admin/alerts/alert/?state=all",
        "critical, all states": "/admin/alerts/alert/?state=all&severity__exact=50",
        "one source, resolved": f"/admin/alerts/alert/?{one_source}",
        "search a source": "/admin/alerts/alert/?state=all&q=bot-042",
    }
    timings: dict[str, list[float]] = {}
    for label, url in pages.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)  # warm-up (and a check)
        assert response.status_code == 200, (url, response.status_code)
        if show_queries:
            for query in queries.captured_queries:
                print(f"    {float(query['time']) * 1000:7.1f} ms  {query['sql'][:160]}")
        samples = []
        for _ in range(requests):
            t0 = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        timings[label] = samples
        print(
            f"{label:24s} p50 {statistics.median(samples):7.1f} ms  "
            f"p99 {percentile(samples, 0.99):7.1f} ms  ({url})",
            flush=True,
        )
    every = [value for samples in timings.values() for value in samples]
    first = timings["open alerts (default)"]
    return {
        "alerts": alert_count,
        "changelist_p50_ms": round(statistics.median(every), 1),
        "changelist_p99_ms": round(percentile(every, 0.99), 1),
        "first_page_p50_ms": round(statistics.median(first), 1),
        "filtered_p50_ms": {
            label: round(statistics.median(samples), 1)
            for label, samples in timings.items()
            if label != "open alerts (default)"
        },
    }


if __name__ == "__main__":
    sys.exit(main())
