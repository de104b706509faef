from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "alerts"
    verbose_name = "Rules and alerts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .rulepacks.trading import install_trading_pack

        # Rows, not schema: written after migrate, once per rule (see the pack's module).
        post_migrate.connect(
            install_trading_pack, sender=self, dispatch_uid="tradewatch_install_trading_pack"
        )
