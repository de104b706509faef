from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """No models: listed so that its templates (the audit history page) are found."""

    name = "core"
    verbose_name = "Tradewatch core"
