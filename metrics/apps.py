from __future__ import annotations

from django.apps import AppConfig


class MetricsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "metrics"
    verbose_name = "Sources and metrics"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI auth extension)

        self._refuse_changed_keys_at_once()
        self._reread_schedules_on_edits()

    @staticmethod
    def _reread_schedules_on_edits() -> None:
        """Schedule and expectation edits reach every process's timetables at once."""
        from django.db.models.signals import post_delete, post_save

        from .models import Expectation, Schedule
        from .schedules import schedules_changed

        def changed(**kwargs: object) -> None:
            schedules_changed()

        for model in (Schedule, Expectation):
            post_save.connect(changed, sender=model, weak=False)
            post_delete.connect(changed, sender=model, weak=False)

    @staticmethod
    def _refuse_changed_keys_at_once() -> None:
        """A key or source edited or deleted (admin forms, deletes): every web process
        checks keys afresh. Bulk updates call `keys_changed` themselves (services)."""
        from django.db.models.signals import post_delete, post_save

        from .authentication import keys_changed
        from .models import Source, SourceAPIKey

        def saved(created: bool = False, **kwargs: object) -> None:
            # A new key or source cannot be remembered anywhere yet.
            if not created:
                keys_changed()

        def deleted(**kwargs: object) -> None:
            keys_changed()

        for model in (Source, SourceAPIKey):
            post_save.connect(saved, sender=model, weak=False)
            post_delete.connect(deleted, sender=model, weak=False)
