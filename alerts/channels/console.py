"""Console channel: one line per notification on standard output, coloured by severity."""

from __future__ import annotations

import sys
import time
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


class ConsoleChannel(ChannelKind):
    """Prints each notification as one line; for development and `docker compose logs`.

    Config: `colour` (default true) to colour the line by severity.
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
        """Write the line and flush it, so it shows at once in a container's log."""
        started = time.perf_counter()
        line = self.line(message)
        # Looked up at send time, not import time, so a redirected stdout is honoured.
        stream = self._stream or sys.stdout
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            return DeliveryResult(
                ok=False, error=f"Cannot write to the console: {exc}", permanent=False
            )
        return DeliveryResult(ok=True, duration_ms=(time.perf_counter() - started) * 1000)

    def line(self, message: NotificationMessage) -> str:
        """The line written: title, message, link and held-back count, one line."""
        alert = message.alert
        parts = [formatting.title(message)]
        if alert.get("value") not in (None, ""):
            parts.append(f"value={alert['value']}")
        if alert.get("message"):
            parts.append(" ".join(str(alert["message"]).split()))
        url = formatting.link(alert)
        if url:
            parts.append(url)
        if message.digest:
            held = "; ".join(formatting.summary(other) for other in message.digest)
            parts.append(f"(+{len(message.digest)} held back: {held})")
        line = " | ".join(parts)
        if not self.config.get("colour", True):
            return line
        code = _ANSI_RESOLVED if message.event == "resolved" else _ANSI.get(message.severity, "")
        return f"{code}{line}{_ANSI_RESET}" if code else line
