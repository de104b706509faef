from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "health"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .rulepack import install_health_rule
        from .selfmonitoring import install_self_monitoring_rules

        # Rows, not schema: written after migrate, once (see the rule pack's module).
        post_migrate.connect(
            install_health_rule, sender=self, dispatch_uid="tradewatch_install_health_rule"
        )
        post_migrate.connect(
            install_self_monitoring_rules,
            sender=self,
            dispatch_uid="tradewatch_install_self_monitoring_rules",
        )
