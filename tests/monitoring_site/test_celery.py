"""Tasks travel through the real broker to a real worker process and back."""

from __future__ import annotations

import pytest
from celery import current_app

from health.models import ProcessHeartbeat
from health.tasks import record_beat_tick
from monitoring_site.tasks import ping
from tests.processes import celery_worker, process_environment, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_it_round_trips_a_task_through_a_real_worker() -> None:
    current_app.control.purge()
    with celery_worker(process_environment()) as worker:
        result = ping.delay()

        assert result.get(timeout=60) == "pong"
        assert worker.poll() is None


def test_it_runs_a_database_task_in_the_worker_against_the_same_database() -> None:
    with celery_worker(process_environment()):
        record_beat_tick.delay()

        assert wait_until(lambda: ProcessHeartbeat.objects.filter(role="beat").exists(), 60)


def test_it_is_configured_for_no_lost_work() -> None:
    conf = current_app.conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    # django-celery-beat's scheduler, sending only while it holds the beat lock.
    assert conf.beat_scheduler == "monitoring_site.beat:LockedDatabaseScheduler"
