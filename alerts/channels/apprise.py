"""Apprise channel: any service Apprise knows (MS Teams, Pushover, ntfy, …) by URL.

Apprise makes its own connections (requests, smtplib, ...), so the destination check
runs twice here. On save, the URL's server, for the schemes whose URL names one (found
from Apprise's own plugin metadata: a `host` token), is resolved and every address it
resolves to must be allowed, like a webhook's; schemes that talk to a fixed cloud API
have nothing to check then. On every send, each socket Apprise opens is vetted after
DNS, on the address it connects to (`alerts.channels.guard`), whatever the scheme: a
name re-pointed at loopback, a redirect, or a host Apprise builds from other parts of
the URL cannot reach inside either. Schemes that deliver without a network connection
the guard can see (the desktop and local syslog ones, custom plugins) are refused unless
listed in `TRADEWATCH_APPRISE_UNCHECKED_SCHEMES`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, ClassVar

import apprise
from django.conf import settings

from alerts.channels import formatting
from alerts.channels.base import ChannelKind, DeliveryResult, NotificationMessage
from alerts.channels.destinations import host_refusal
from alerts.channels.guard import vetted_connections

# What Apprise's metadata calls the `host` token when it is a server to connect to (not
# "Domain", a sender's mail domain, nor "Agent ID", which only sits where a host would).
_SERVER_TOKEN_NAMES = frozenset({"Hostname", "Host", "API Hostname"})
# Plugin modes in which the URL's "host" is a topic or token for the service's own
# cloud (ntfy://topic, notica://token), never sent to DNS.
_CLOUD_MODES = frozenset({"cloud", "official"})
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
        refusal = scheme_refusal(plugin) or destination_refusal(plugin)
        if refusal:
            raise cls.invalid({"url": refusal})

    def send(self, message: NotificationMessage) -> DeliveryResult:
        """Hand the title and body to Apprise; its verdict is success or retry."""
        started = time.perf_counter()
        url = self.secrets["url"].strip()
        plugin = _plugin(url)
        if plugin is None:
            return _failure(started, "Apprise does not recognise the channel's URL.", True)
        # The setting may have changed since the channel was saved.
        refusal = scheme_refusal(plugin)
        if refusal:
            return _failure(started, refusal, True)
        seconds = float(settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS)
        plugin.socket_connect_timeout = seconds
        plugin.socket_read_timeout = seconds
        notifier = apprise.Apprise(asset=_asset())
        notifier.add(plugin)
        with vetted_connections() as vetted:
            result = notifier.notify(
                title=formatting.title(message),
                body=formatting.text(message),
                notify_type=_notify_type(message),
                body_format=apprise.NotifyFormat.TEXT,
                timeout=seconds,
                log_level=logging.WARNING,
            )
        duration_ms = (time.perf_counter() - started) * 1000
        if vetted.refusals:
            # Whatever Apprise made of the aborted connection, it went nowhere, and
            # retrying would not change where it goes.
            return _failure(started, "Destination refused: " + vetted.refusals[0], True)
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


def scheme_refusal(plugin: Any) -> str | None:
    """Why the plugin's deliveries cannot be vetted, or None when they can.

    Apprise gives a local service (desktop notifications, the local syslog) no URL
    identity, and those deliver through libraries below Python's sockets; a custom
    plugin is code nobody here has read. Either is let through only when an operator
    lists its scheme.
    """
    scheme = _scheme(plugin)
    # The class's category: some plugins (bark://) reuse `category` on the instance.
    if type(plugin).category == "native" and plugin.url_id() is not None:
        return None
    if scheme in {s.strip().lower() for s in settings.TRADEWATCH_APPRISE_UNCHECKED_SCHEMES}:
        return None
    return (
        f"{scheme}:// delivers without a network connection Tradewatch can check; it is "
        "allowed only when listed in TRADEWATCH_APPRISE_UNCHECKED_SCHEMES."
    )


def destination_refusal(plugin: Any) -> str | None:
    """Why a server the URL names may not be reached, or None (checked on save)."""
    for host, port in servers(plugin):
        refusal = host_refusal(host, port)
        if refusal is not None:
            return refusal
    return None


def servers(plugin: Any) -> list[tuple[str, int]]:
    """The servers (host, port) the URL itself names, as Apprise parsed it.

    Empty for services with a fixed cloud API: their host is Apprise's, and the
    connect-time guard still vets the address it resolves to.
    """
    found: list[tuple[str, int]] = []
    token = next(
        (
            spec
            for name, spec in plugin.template_tokens.items()
            if name == "host" or spec.get("map_to") == "host"
        ),
        None,
    )
    host = getattr(plugin, "host", None)
    if (
        token is not None
        and _token_name(token) in _SERVER_TOKEN_NAMES
        and isinstance(host, str)
        and host
        and getattr(plugin, "mode", None) not in _CLOUD_MODES
    ):
        found.append((host, _port(plugin, 443 if plugin.secure else 80)))
    # The e-mail kinds (mailto://, deltachat://) name a mail domain as host and reach
    # the SMTP server Apprise looked up for it or that `?smtp=` names.
    smtp = getattr(plugin, "smtp_host", None)
    if isinstance(smtp, str) and smtp:
        found.append((smtp, _port(plugin, 25)))
    return found


def _token_name(token: dict[str, Any]) -> str:
    # Apprise's names are lazy translations; `text` is the untranslated one.
    name = token.get("name")
    return str(getattr(name, "text", name))


def _port(plugin: Any, default: int) -> int:
    port = getattr(plugin, "port", None)
    return port if isinstance(port, int) and 0 < port < 65536 else default


def _scheme(plugin: Any) -> str:
    schema = getattr(plugin, "schema", None) or getattr(plugin, "protocol", None) or "?"
    if isinstance(schema, (tuple, list)):
        schema = schema[0]
    return str(schema).lower()


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
