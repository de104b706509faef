"""Console channel: one line per notification on the process's own standard output.

The line goes to the stream the process was started with (`sys.__stdout__`), not to
`sys.stdout`: a Celery worker replaces `sys.stdout` with a proxy that logs every line
as a WARNING of `celery.redirected`, so under `make run` each notification read
`... WARNING celery.redirected [Firing] ...`, in the log format, on stderr, uncoloured.
The launcher hands its own stdout to the worker, so the line reaches its terminal.

Several pool processes (and threads) of one worker share that stream: each line is
written with one `write(2)` of the whole encoded line, which the kernel does not
interleave with another process's write to the same terminal, pipe (up to PIPE_BUF
bytes) or file opened for appending.

Colour (ANSI, by severity; green once resolved) is used only when the channel's
`colour` is on, the stream is a terminal and `NO_COLOR` is not set (no-color.org), so
log files and `docker compose logs` piped elsewhere get plain text.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar, TextIO

from alerts.channels import formatting
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage

_ANSI: dict[str, str] = {
    "DEBUG": "\033[2m",
    "INFO": "\033[36m",
    "WARNING": "\033[33m",
    "ERROR": "\033[31m",
    "CRITICAL": "\033[1;31m",
    "EMERGENCY": "\033[1;37;41m",
}
_ANSI_RESOLVED = "\033[32m"
_ANSI_RESET = "\033[0m"

# Threads of one process (a threaded pool, the web server's threads) take turns.
_WRITE_LOCK = threading.Lock()


def _fresh_lock_after_fork() -> None:
    # A lock some other thread held when the process forked would never be released in
    # the child (a pool process forked while the parent was writing).
    global _WRITE_LOCK
    _WRITE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_after_fork)


def process_stdout() -> TextIO | None:
    """The standard output this process was started with (None when it has none)."""
    return sys.__stdout__


def colour_wanted(
    stream: TextIO, *, configured: bool, environ: Mapping[str, str] = os.environ
) -> bool:
    """Colour only for a person: configured on, a terminal, and `NO_COLOR` not set."""
    if not configured or environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def write_line(stream: TextIO, line: str) -> None:
    """Write `line` and a newline to `stream` at once, so concurrent lines never mix."""
    text = line + "\n"
    with _WRITE_LOCK:
        try:
            descriptor = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            # An in-memory stream: no other process can write to it.
            stream.write(text)
            stream.flush()
            return
        # Whatever the process printed before goes out first, in order.
        stream.flush()
        data = memoryview(text.encode(stream.encoding or "utf-8", errors="replace"))
        while data:
            data = data[os.write(descriptor, data) :]


class ConsoleChannel(ChannelKind):
    """Prints each notification as one line; for `make run`'s terminal and container logs.

    Config: `colour` (default true) to colour the line by severity on a terminal.
    """

    kind = "console"
    label = "Console"
    config_fields: ClassVar[tuple[str, ...]] = ("colour",)

    def __init__(
        self, config: dict[str, Any], secrets: dict[str, str], *, stream: TextIO | None = None
    ) -> None:
        super().__init__(config, secrets)
        self._stream = stream

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """`colour`, when given, is a boolean."""
        if "colour" in config and not isinstance(config["colour"], bool):
            raise cls.invalid({"colour": "Must be true or false."})

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Write the line and flush it, so it shows at once in a terminal or a log."""
        started = time.perf_counter()
        stream = self._stream or process_stdout()
        if stream is None:
            return DeliveryResult(
                ok=False, error="This process has no standard output to write to.", permanent=True
            )
        try:
            colour = colour_wanted(stream, configured=self.config.get("colour", True))
            write_line(stream, self.line(message, colour=colour))
        except (OSError, ValueError) as exc:
            return DeliveryResult(
                ok=False, error=f"Cannot write to the console: {exc}", permanent=False
            )
        return DeliveryResult(ok=True, duration_ms=(time.perf_counter() - started) * 1000)

    def line(self, message: NotificationMessage, *, colour: bool = False) -> str:
        """The line written: what happened, the message, value against threshold, link.

        `[Firing] CRITICAL Drawdown on alpha-bot | drawdown 21.5 % | value 21.5
        (threshold > 20) | https://.../admin/alerts/alert/42/change/`, then the alerts a
        rate limit held back when the message is a digest.
        """
        alert = message.alert
        parts = [formatting.title(message)]
        labels = alert.get("labels")
        if isinstance(labels, dict) and labels:
            parts.append(" ".join(f"{name}={value}" for name, value in sorted(labels.items())))
        if alert.get("message"):
            parts.append(" ".join(str(alert["message"]).split()))
        figures = _value_against_threshold(alert)
        if figures:
            parts.append(figures)
        url = formatting.link(alert)
        if url:
            parts.append(url)
        if message.digest:
            held = "; ".join(formatting.summary(other) for other in message.digest)
            parts.append(f"(+{len(message.digest)} held back: {held})")
        line = " | ".join(parts)
        if not colour:
            return line
        code = _ANSI_RESOLVED if message.event == "resolved" else _ANSI.get(message.severity, "")
        return f"{code}{line}{_ANSI_RESET}" if code else line


def _value_against_threshold(alert: dict[str, Any]) -> str:
    """`value 21.5 (threshold > 20)`: the figure and the condition it was judged by."""
    value, threshold = alert.get("value"), alert.get("threshold")
    parts = []
    if value not in (None, ""):
        parts.append(f"value {_number(value)}")
    if threshold not in (None, ""):
        comparison = str(alert.get("comparison") or "").strip()
        condition = f"{comparison} {_number(threshold)}" if comparison else _number(threshold)
        parts.append(f"(threshold {condition})")
    return " ".join(parts)


def _number(value: Any) -> str:
    """A figure as an operator reads it: `20`, not `20.0`; `0.3`, not `0.30000000000000004`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.15g}"
