"""Keep source API keys out of every log line.

Senders that cannot set headers put their key in the URL: `/api/v1/hooks/<kind>/<key>/`.
Whoever reads a log holding such a path can post as that source (a kill switch event
mutes its drawdown alerts), so every path is written with the key redacted, keeping the
key's public prefix (`AbCd1234.` — shown in the admin, useless without the secret) so an
operator can still tell which key called.

`HookKeyFilter` rewrites a record's message, arguments, known extras (the request that
`django.request` attaches, which JSON logs print) and traceback. It belongs on the
handlers, not on loggers: a logger's filters do not see records from its children, and
a web server logs through handlers of its own. `redact_every_handler()` attaches it to
every handler configured so far, the web server's access log (`granian.access`, see
`monitoring_site.webserver`) included.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any
from urllib.parse import unquote

from pythonjsonlogger.json import JsonFormatter

REDACTED = "<redacted>"

# A key already redacted (`AbCd1234.<redacted>`) is left alone: text may be redacted
# twice (a web server's access atoms, then its handler's filter).
_NOT_REDACTED = rf"(?![A-Za-z0-9]{{8}}\.{re.escape(REDACTED)})"
# The path of the hook endpoints (metrics/api/urls.py), in whatever spelling a router
# would still route: repeated or percent-encoded slashes, any letter case.
_HOOK_PATH = re.compile(
    r"(?P<head>hooks(?:/|%2f)+[^/%\s?#\"'<>]+?(?:/|%2f)+)"
    rf"(?P<key>{_NOT_REDACTED}[^/\s?#\"'<>]+)",
    re.IGNORECASE,
)
# A key in a query string (`?key=`, `&api_key=`; and `api_key = '...'` as an error
# report lists GET parameters): no endpoint takes one there, but a sender may still try.
_QUERY_KEY = re.compile(
    r"(?<![A-Za-z0-9_-])(?P<head>(?:api[_-]?)?(?:key|token)(?:=| = '))"
    rf"(?P<key>{_NOT_REDACTED}[^&;\s#\"'<>]+)",
    re.IGNORECASE,
)
# djangorestframework-api-key's keys are `<prefix>.<secret>`; the prefix is public.
_PUBLIC_PREFIX = re.compile(r"[A-Za-z0-9]{8}\.")


def _redact_key(match: re.Match[str]) -> str:
    key = match.group("key")
    prefix = _PUBLIC_PREFIX.match(key)
    kept = prefix.group(0) if prefix is not None and len(key) > prefix.end() else ""
    return f"{match.group('head')}{kept}{REDACTED}"


def _substitute(text: str) -> str:
    return _QUERY_KEY.sub(_redact_key, _HOOK_PATH.sub(_redact_key, text))


def _may_hold_key(text: str) -> bool:
    """What every text holding a key has (percent-encoded, `%68ooks`, it has a `%`).

    Most log values (times, addresses, statuses, other endpoints' paths) are passed at
    once: a web server's access line has some 50 of them, for every request.
    """
    lowered = text.lower()
    return "hooks" in lowered or "key" in lowered or "token" in lowered or "%" in text


def redact(text: str) -> str:
    """`text` with every hook key in a path or query string redacted."""
    if not _may_hold_key(text):
        return text
    redacted = _substitute(text)
    if "%" in redacted:
        # A percent-encoded path (`hooks%2Fevents%2F<key>`, `%68ooks`) routes the same
        # once the server decodes it: look at the decoded text too, and log that when
        # it held a key.
        decoded = unquote(redacted)
        decoded_redacted = _substitute(decoded)
        if decoded_redacted != decoded:
            return decoded_redacted
    return redacted


class RedactedText:
    """An object (a request, an URL) whose text is redacted; attributes are its own.

    Stands in for a record's extra so a JSON formatter prints no key, while a handler
    that needs the real object (Django's admin e-mail handler reads the request) still
    finds every attribute.
    """

    def __init__(self, wrapped: object, text: str) -> None:
        object.__setattr__(self, "_wrapped", wrapped)
        object.__setattr__(self, "_text", text)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_wrapped"), name)

    def __str__(self) -> str:
        return str(object.__getattribute__(self, "_text"))

    __repr__ = __str__


# Every attribute a bare LogRecord has: whatever else a record carries is an extra.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _redacted_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float | bool | RedactedText):
        # Left as they are, so `%d` and `%.2f` keep working.
        return value
    shown = str(value)
    redacted = redact(shown)
    # Only objects whose text carried a key are replaced.
    return value if redacted == shown else RedactedText(value, redacted)


class HookKeyFilter(logging.Filter):
    """Redacts hook keys in a record's message, arguments, extras and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            # In place: the mapping may be a class of its own (a web server's access atoms
            # answer "-" for a missing name), which a plain dict would break.
            for name, value in list(record.args.items()):
                record.args[name] = _redacted_value(value)
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted_value(value) for value in record.args)
        for name, value in list(record.__dict__.items()):
            if name not in _RECORD_ATTRIBUTES:
                record.__dict__[name] = _redacted_value(value)
        if record.exc_info and not record.exc_text:
            # Formatters format the traceback after filters ran; do it now to redact it.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure(config: dict[str, Any]) -> None:
    """Django's `LOGGING_CONFIG`: apply `config`, then redact every handler configured
    so far, Django's own defaults included (they are set up just before), however often
    Django sets logging up in a process."""
    logging.config.dictConfig(config)
    redact_every_handler()


def redact_every_handler() -> None:
    """Attach `HookKeyFilter` to every handler of every logger configured so far.

    Django configures its own loggers' handlers (`django.server`, the admins' e-mail),
    and a web server or Celery its own; this reaches all of them, whoever set them up.
    """
    loggers: list[logging.Logger | logging.PlaceHolder] = [logging.getLogger()]
    loggers += list(logging.Logger.manager.loggerDict.values())
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            redact_handler(handler)


def redact_handler(handler: logging.Handler) -> None:
    """Attach `HookKeyFilter` to `handler` unless it has one."""
    if not any(isinstance(existing, HookKeyFilter) for existing in handler.filters):
        handler.addFilter(HookKeyFilter())


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines whose traceback is redacted too.

    python-json-logger formats the traceback from the exception itself, not from the
    text a filter left in `exc_text`.
    """

    def formatException(self, ei: Any) -> Any:
        formatted = super().formatException(ei)
        if isinstance(formatted, list):  # exc_info_as_array
            return [redact(line) for line in formatted]
        return redact(formatted)
