"""The periodic tasks are installed at migrate time, once, and admin edits survive."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from monitoring_site.schedule import PERIODIC_WORK

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_installs_every_periodic_task_at_migrate_time() -> None:
    PeriodicTask.objects.all().delete()

    call_command("migrate", verbosity=0)

    names = set(PeriodicTask.objects.values_list("name", flat=True))

    assert {work.name for work in PERIODIC_WORK} <= names
    tick = PeriodicTask.objects.get(name="Beat tick")
    assert tick.task == "health.tasks.record_beat_tick"
    assert tick.interval is not None
    assert tick.interval.every == 15
    assert tick.expire_seconds == 15


def test_it_keeps_admin_edits_when_migrate_runs_again() -> None:
    call_command("migrate", verbosity=0)
    tick = PeriodicTask.objects.get(name="Beat tick")
    slower, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    tick.interval = slower
    tick.enabled = False
    tick.save()

    call_command("migrate", verbosity=0)

    tick.refresh_from_db()
    assert tick.interval == slower
    assert tick.enabled is False
    assert PeriodicTask.objects.filter(name="Beat tick").count() == 1


def test_it_restores_a_deleted_entry_on_migrate() -> None:
    PeriodicTask.objects.filter(name="Beat tick").delete()

    call_command("migrate", verbosity=0)

    assert PeriodicTask.objects.filter(name="Beat tick").count() == 1
