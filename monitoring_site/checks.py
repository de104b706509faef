"""System checks for configuration mistakes that settings alone cannot refuse."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.compatibility, deploy=True)
def check_embedded_mode_in_production(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """The embedded SQLite database and file broker are for trying Tradewatch out."""
    problems: list[Warning] = []
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(
            Warning(
                "DATABASE_URL points at SQLite: fine for a trial, not for real money.",
                hint="Set DATABASE_URL to a PostgreSQL database.",
                id="tradewatch.W001",
            )
        )
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        problems.append(
            Warning(
                "CELERY_BROKER_URL uses the embedded file broker, which only one machine "
                "can share.",
                hint="Set CELERY_BROKER_URL to a Redis URL.",
                id="tradewatch.W002",
            )
        )
    return problems
