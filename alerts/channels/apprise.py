"""Apprise channel: any service Apprise knows (MS Teams, Pushover, ntfy, …) by URL.

Apprise makes its own HTTP requests, with its own client, so the transport's
connect-time SSRF guard cannot reach them. What can be done is done here: the URL's host
is checked when Apprise's URL names one (an IP literal always, a host name for the
self-hosted kinds whose host is a server rather than a token), on save and again before
each send. A name re-pointed at a private address between that check and Apprise's own
connect is not caught; channels that must be watertight use the webhook kind.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from typing import Any, ClassVar

import apprise
from django.conf import settings

from alerts.channels import formatting
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage
from alerts.channels.destinations import address_is_refused, resolve

# Kinds whose URL host is a server an operator runs; for the others (tgram://, slack://,
# pover://) Apprise's "host" is often a token, which must not be sent to DNS.
SELF_HOSTED_SCHEMES = frozenset(
    {
        "json",
        "jsons",
        "xml",
        "xmls",
        "form",
        "forms",
        "apprise",
        "apprises",
        "gotify",
        "gotifys",
        "ntfy",
        "ntfys",
        "mmost",
        "mmosts",
        "rocket",
        "rockets",
        "ncloud",
        "nclouds",
        "matrix",
        "matrixs",
    }
)
_STATUS = re.compile(r"error=(\d{3})\b")


class AppriseChannel(ChannelKind):
    """Notifies through one Apprise URL.

    Secret: `url` (an Apprise URL such as `msteams://…` or `json://host/path`; the URL
    usually holds the service's credentials).
    """

    kind = "apprise"
    label = "Apprise URL"
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """Apprise recognises the URL, and its host, where it names one, is allowed."""
        url = secrets.get("url", "").strip()
        if not url:
            raise cls.invalid({"url": "An Apprise URL is required."})
        plugin = _plugin(url)
        if plugin is None:
            raise cls.invalid({"url": "Apprise does not recognise this URL."})
        refusal = host_refusal(plugin, url)
        if refusal:
            raise cls.invalid({"url": refusal})

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Hand the title and body to Apprise; its verdict is success or retry."""
        started = time.perf_counter()
        url = self.secrets["url"].strip()
        plugin = _plugin(url)
        if plugin is None:
            return _failure(started, "Apprise does not recognise the channel's URL.", True)
        refusal = host_refusal(plugin, url)
        if refusal:
            return _failure(started, refusal, True)
        seconds = float(settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS)
        plugin.socket_connect_timeout = seconds
        plugin.socket_read_timeout = seconds
        notifier = apprise.Apprise(asset=_asset())
        notifier.add(plugin)
        result = notifier.notify(
            title=formatting.title(message),
            body=formatting.text(message),
            notify_type=_notify_type(message),
            body_format=apprise.NotifyFormat.TEXT,
            timeout=seconds,
            log_level=logging.WARNING,
        )
        duration_ms = (time.perf_counter() - started) * 1000
        if result:
            return DeliveryResult(ok=True, duration_ms=duration_ms)
        complaints = [str(entry.message) for entry in result.logs()][-3:]
        # Apprise's HTTP plugins end their complaint with "error=<status>".
        statuses = [int(m.group(1)) for m in map(_STATUS.search, complaints) if m]
        # Apprise does not tell a bad token from an outage: keep retrying, bounded by
        # the outbox's attempt limit.
        return DeliveryResult(
            ok=False,
            status=statuses[-1] if statuses else None,
            duration_ms=duration_ms,
            error="Apprise could not deliver"
            + (": " + " / ".join(complaints) if complaints else "."),
            details={"apprise_status": getattr(result.status, "name", str(result.status))},
        )


def host_refusal(plugin: Any, url: str) -> str | None:
    """Why the URL's host may not be notified, or None when it may (or is not a host)."""
    host = getattr(plugin, "host", None)
    if not isinstance(host, str) or not host:
        return None
    host = host.strip("[]")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        reason = address_is_refused(literal)
        return None if reason is None else f"{host} is {reason}; channels may not deliver there."
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SELF_HOSTED_SCHEMES:
        return None
    port = getattr(plugin, "port", None)
    try:
        addresses = resolve(host, int(port) if port else 443)
    except (socket.gaierror, UnicodeError, ValueError):
        return f"The host {host} does not resolve."
    for address in addresses:
        reason = address_is_refused(address)
        if reason is not None:
            return (
                f"{host} resolves to {address}, which is {reason}; channels may not deliver there."
            )
    return None


def _plugin(url: str) -> Any:
    return apprise.Apprise.instantiate(url, asset=_asset())


def _asset() -> apprise.AppriseAsset:
    # Memory only: Apprise would otherwise keep per-URL state files in the home directory.
    return apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)


def _notify_type(message: NotificationMessage) -> apprise.NotifyType:
    if message.event == "resolved":
        return apprise.NotifyType.SUCCESS
    severity = message.severity
    if severity in ("CRITICAL", "EMERGENCY"):
        return apprise.NotifyType.FAILURE
    if severity in ("WARNING", "ERROR"):
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


def _failure(started: float, error: str, permanent: bool) -> DeliveryResult:
    return DeliveryResult(
        ok=False,
        error=error,
        permanent=permanent,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
