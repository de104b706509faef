"""The logging configuration of every process (settings.LOGGING), apart from the
settings because it is long and changes for its own reasons."""

from __future__ import annotations

from typing import Any


def logging_settings(log_format: str, level: str) -> dict[str, Any]:
    """Console logging in `log_format` ("json" or "plain") at `level`, with hook keys and
    channel secrets redacted and the request/task ids on every record."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "json": {
                "()": "monitoring_site.log_redaction.RedactingJsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d "
                "%(request_id)s %(task_id)s %(task_name)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
        },
        "filters": {
            # Hook URLs carry a source's API key (also attached to every other handler,
            # Django's and the web server's, by LOGGING_CONFIG and monitoring_site.apps).
            "redact_hook_keys": {"()": "monitoring_site.log_redaction.HookKeyFilter"},
            # Slack, Discord and Telegram put their credentials in the URL path.
            "mask_secret_urls": {"()": "alerts.channels.masking.SecretURLFilter"},
            "context": {"()": "monitoring_site.logcontext.ContextFilter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["redact_hook_keys", "mask_secret_urls", "context"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # httpx logs every request URL at INFO; delivery logs its own line per attempt.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            # django-axes announces itself at INFO in every process, each `manage.py` command
            # included, whose output should be the command's own. Only that line is logged
            # there; lockouts and failed sign-ins log under axes.handlers.* and are kept
            # (AXES_VERBOSE=False would also drop the user agent from those lines).
            "axes.apps": {"level": "WARNING"},
            # redis-py gives this logger a stdout handler of its own (no redaction, outside
            # LOG_FORMAT) the first time a process subscribes, unless the logger exists
            # already: configured here, its records go through the handlers above.
            "push_response": {"level": "WARNING"},
        },
    }
