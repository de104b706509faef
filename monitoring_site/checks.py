"""System checks for configuration mistakes that settings alone cannot refuse."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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


@register(Tags.security, deploy=True)
def check_encryption_key(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Channel secrets need their own key: one derived from SECRET_KEY dies with it."""
    if settings.TRADEWATCH_ENCRYPTION_KEYS:
        return []
    return [
        Error(
            "TRADEWATCH_ENCRYPTION_KEY is not set: channel secrets are encrypted with a key "
            "derived from SECRET_KEY.",
            hint="Set TRADEWATCH_ENCRYPTION_KEY to a Fernet key (python -c 'from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())').",
            id="tradewatch.E003",
        )
    ]
