"""Django's error reports (the debug page, the admins' e-mail) without hook keys."""

from __future__ import annotations

import re
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.debug import ExceptionReporter

from .log_redaction import REDACTED, redact

# Query parameters named like a key have their whole value hidden in a report.
_KEY_PARAMETER = re.compile(r"(?:api[_-]?)?(?:key|token)", re.IGNORECASE)


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactingExceptionReporter(ExceptionReporter):
    """Django's error report with every hook key in a path or query string redacted.

    The report shows the request's path, its `META` (`PATH_INFO`, `RAW_URI`,
    `QUERY_STRING`...), its GET parameters and local variables: all of them may hold a
    key taken from a hook URL. The values are redacted before the templates escape
    them (an escaped quote would hide a key from the pattern), and the finished report
    once more for what the templates read from the request itself (its path).
    """

    def get_traceback_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().get_traceback_data()
        for frame in data.get("frames", []):
            if "vars" in frame:
                frame["vars"] = [(name, _redacted(value)) for name, value in frame["vars"]]
        if isinstance(data.get("request_meta"), dict):
            data["request_meta"] = {
                name: _redacted(value) for name, value in data["request_meta"].items()
            }
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (name, REDACTED if _KEY_PARAMETER.fullmatch(name) else _redacted(value))
                for name, value in data["request_GET_items"]
            ]
        for name in ("request_insecure_uri", "exception_value"):
            if name in data:
                data[name] = _redacted(data[name])
        return data

    def get_traceback_html(self) -> SafeString:
        # The marker is text in a page: escaped, or a browser would take it for a tag.
        html = redact(str(super().get_traceback_html())).replace(REDACTED, escape(REDACTED))
        return mark_safe(html)  # noqa: S308 (Django's own page, only keys replaced)

    def get_traceback_text(self) -> SafeString:
        return mark_safe(redact(str(super().get_traceback_text())))  # noqa: S308 (as above)
