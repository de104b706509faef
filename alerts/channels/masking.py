"""A logging filter that keeps channel credentials out of logs.

Slack and Discord webhook URLs and Telegram bot URLs are credentials in their path;
httpx, Apprise and our own messages may log them. Attach `SecretURLFilter` to the
handlers (not loggers: a logger's filters do not apply to records from its children).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MASK = "…"
_PUBLIC_BASES = ("https://hooks.slack.com", "https://discord.com", "https://api.telegram.org")

# Each pattern keeps its one group (where the credential starts) and masks the rest.
_FIXED_PATTERNS = (
    r"(hooks\.slack\.com/(?:services|triggers|workflows)/)[^\s'\"<>]+",
    r"((?:discord|discordapp)\.com/api/(?:v\d+/)?webhooks/)[^\s'\"<>]+",
    r"(api\.telegram\.org/(?:file/)?bot)[^/\s'\"<>]+",
    # A bot token on its own, wherever it turns up (an error message, a repr).
    r"(\b\d{6,12}:)[A-Za-z0-9_-]{30,}",
    r"(whsec_)[A-Za-z0-9+/=]{8,}",
)


class SecretURLFilter(logging.Filter):
    """Masks webhook and bot credentials in a record's message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        pattern = _pattern()
        if isinstance(record.msg, str):
            record.msg = pattern.sub(_keep_prefix, record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _mask_arg(pattern, value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_mask_arg(pattern, value) for value in record.args)
        if record.exc_info and not record.exc_text:
            # Formatters format the traceback after filters ran; do it now to mask it.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = pattern.sub(_keep_prefix, record.exc_text)
        if record.stack_info:
            record.stack_info = pattern.sub(_keep_prefix, record.stack_info)
        return True


def mask_text(text: str) -> str:
    """`text` with every credential the filter knows masked."""
    return _pattern().sub(_keep_prefix, text)


def _mask_arg(pattern: re.Pattern[str], value: Any) -> Any:
    if isinstance(value, str):
        return pattern.sub(_keep_prefix, value)
    if value is None or isinstance(value, int | float | bool):
        # Left as they are, so `%d` and `%.2f` keep working.
        return value
    shown = str(value)
    masked = pattern.sub(_keep_prefix, shown)
    # Only objects whose text carried a secret become text (an httpx.URL, an exception).
    return value if masked == shown else masked


def _keep_prefix(match: re.Match[str]) -> str:
    # Every alternative has exactly one group: the part before the credential.
    return str(match.group(match.lastindex or 0)) + MASK


def _pattern() -> re.Pattern[str]:
    try:
        bases = (
            settings.TRADEWATCH_SLACK_BASE_URL,
            settings.TRADEWATCH_DISCORD_BASE_URL,
            settings.TRADEWATCH_TELEGRAM_BASE_URL,
        )
    except (ImproperlyConfigured, AttributeError):
        # A record logged before settings are loaded (a worker starting up) is still
        # masked for the services' public addresses.
        bases = _PUBLIC_BASES
    return _compiled(*bases)


@lru_cache(maxsize=4)
def _compiled(slack: str, discord: str, telegram: str) -> re.Pattern[str]:
    # The configured base URLs (a proxy, a test receiver) are masked like the real ones.
    configured = [
        rf"({re.escape(slack.rstrip('/'))}/(?:services|triggers|workflows)/)[^\s'\"<>]+",
        rf"({re.escape(discord.rstrip('/'))}/api/(?:v\d+/)?webhooks/)[^\s'\"<>]+",
        rf"({re.escape(telegram.rstrip('/'))}/(?:file/)?bot)[^/\s'\"<>]+",
    ]
    return re.compile("|".join(f"(?:{p})" for p in (*configured, *_FIXED_PATTERNS)))
