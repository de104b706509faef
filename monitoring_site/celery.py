"""The Celery application: configured from Django settings (the `CELERY_` names)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init

from health.selfmonitoring import WorkerPresence

from .logcontext import connect_celery_signals
from .memory import collector_tune

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")

# Every task's base (`health.periodic`): a run sent by beat claims its period
# first, so a second beat (or a replayed message) cannot run periodic work twice.
app = Celery("tradewatch", task_cls="health.periodic:TradewatchTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery_signals()
# Each worker reports itself alive and takes its turn at the self-check, beat or no beat.
app.steps["worker"].add(WorkerPresence)


@worker_process_init.connect
def _tune_collector(**kwargs: object) -> None:
    # Each pool process, right after fork: no 100 ms collection pause mid-evaluation.
    collector_tune()
