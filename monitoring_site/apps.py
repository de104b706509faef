from __future__ import annotations

from django.apps import AppConfig


class MonitoringSiteConfig(AppConfig):
    name = "monitoring_site"
    verbose_name = "Tradewatch"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .log_redaction import redact_every_handler
        from .schedule import install_periodic_tasks

        # Periodic tasks are rows in django-celery-beat's tables, so they can only be
        # written once those tables exist: after migrate, every time, idempotently.
        # (post_migrate is sent per app with models; this app has none of its own.)
        post_migrate.connect(
            install_periodic_tasks,
            sender=apps.get_app_config("django_celery_beat"),
            dispatch_uid="tradewatch_install_periodic_tasks",
        )
        # Logging is configured by now (Django's handlers, and a web server's or Celery's
        # set up before Django): none of them may write a hook URL's key.
        redact_every_handler()
