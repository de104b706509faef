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
        self._invalidate_routing_on_edits()
        self._invalidate_rules_on_edits()

    @staticmethod
    def _invalidate_rules_on_edits() -> None:
        """Rule, threshold and override edits reach every process's rules at once."""
        from django.db.models.signals import post_delete, post_save

        from metrics.models import Expectation, Schedule

        from .evaluation import rules_changed
        from .models import Rule, Threshold, ThresholdOverride

        def changed(**kwargs: object) -> None:
            rules_changed()

        # Evaluation keeps the timetables and expectations with the rules (one
        # generation read per evaluation): their edits are rule edits too.
        for model in (Rule, Threshold, ThresholdOverride, Schedule, Expectation):
            post_save.connect(changed, sender=model, weak=False)
            post_delete.connect(changed, sender=model, weak=False)

    @staticmethod
    def _invalidate_routing_on_edits() -> None:
        """Policy and channel edits reach every process's routing copy at once.

        Cache invalidation only: routing itself never runs from a signal.
        """
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from .models import Channel, Policy
        from .routing import routing_changed

        def changed(**kwargs: object) -> None:
            routing_changed()

        for model in (Policy, Channel):
            post_save.connect(changed, sender=model, weak=False)
            post_delete.connect(changed, sender=model, weak=False)
        for relation in (
            Policy.sources,
            Policy.tags,
            Policy.rules,
            Policy.channels,
            Policy.escalation_channels,
        ):
            m2m_changed.connect(changed, sender=relation.through, weak=False)
