"""Many checks due at once, run by two worker processes: each runs once, none twice."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from health.models import HealthCheck, HealthReport
from tests.processes import BASE_DIR, process_environment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHECKS = 500
INTERVAL = timedelta(seconds=60)
# What a health worker runs on each beat tick, until this minute's checks are done.
# Both start together; each stops at its first pass that finds nothing left to run.
WORKER = """
import django
django.setup()
from health.tasks import run_due_checks
for _ in range(20):
    if run_due_checks() == 0:
        break
"""


def test_it_runs_500_checks_due_in_the_same_minute_once_each_with_two_workers(
    tcp_listener: int,
) -> None:
    now = timezone.now()
    HealthCheck.objects.bulk_create(
        HealthCheck(
            name=f"port-{i}",
            kind="tcp",
            config={"host": "127.0.0.1", "port": tcp_listener},
            interval=INTERVAL,
            timeout=timedelta(seconds=2),
            next_run_at=now,
        )
        for i in range(CHECKS)
    )
    env = process_environment()
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=BASE_DIR) for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(120) == 0
    counts = HealthReport.objects.values("health_check").annotate(n=Count("id"))
    assert len(counts) == CHECKS
    assert {row["n"] for row in counts} == {1}
    first, last = (
        HealthReport.objects.order_by("created_at").first(),
        HealthReport.objects.order_by("created_at").last(),
    )
    assert first is not None
    assert last is not None
    assert last.created_at - first.created_at < INTERVAL
    assert not HealthCheck.objects.filter(lease_until__isnull=False).exists()
