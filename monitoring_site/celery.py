"""The Celery application: configured from Django settings (the `CELERY_` names)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")

app = Celery("tradewatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
