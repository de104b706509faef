"""The connect-time destination check for channels whose libraries open their own sockets.

Apprise (through requests, smtplib, paho, ...) and Django's SMTP backend connect by
themselves, so no transport of ours sits in their way. Python reports every socket
`connect`, `sendto` and `sendmsg` to audit hooks (PEP 578) before the system call, with
the very address the socket is about to reach, that is after DNS. One hook, installed
once per process, judges those addresses while a delivery runs inside
`vetted_connections()`, and aborts the call for any address channels may not reach.

The scope is a context variable, so other threads (web requests reaching PostgreSQL on
loopback, say) are untouched, while work a library hands to a thread pool with a copy of
the context (Apprise does, for its timeouts) stays guarded, even after the delivery gave
up waiting for it.
"""

from __future__ import annotations

import contextvars
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from alerts.channels.destinations import address_is_refused, numeric_address, refused_message

_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})


class ConnectionVetoed(PermissionError):
    """A socket was about to reach an address channels may not reach.

    An `OSError`, so that libraries treat it as the network failure it is (close what
    they opened, give up or try their next address) rather than crash.
    """


@dataclass
class Scope:
    """What the guard refused during one delivery."""

    refusals: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refuse(self, reason: str) -> None:
        with self._lock:
            self.refusals.append(reason)


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "tradewatch_vetted_connections", default=None
)
_installed = False
_install_lock = threading.Lock()


@contextmanager
def vetted_connections() -> Iterator[Scope]:
    """Vet every socket this context opens until the block ends; yields what was refused."""
    _install()
    scope = Scope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def refusal(sock: Any, address: Any) -> str | None:
    """Why `sock` may not reach `address`, or None when it may (pure: no DNS)."""
    family = getattr(sock, "family", None)
    if family not in (socket.AF_INET, socket.AF_INET6):
        # Unix sockets, netlink, raw packets: nothing a notification needs.
        return f"a socket of family {family!r}, which channels may not use"
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return f"an address Tradewatch cannot read ({address!r})"
    host = address[0]
    ip = numeric_address(host)
    if ip is None:
        # socket.connect(("name", port)) resolves inside the call, out of our sight: a
        # name checked here could resolve differently a moment later.
        return (
            f"{host} is a name the socket would resolve by itself, out of reach of the "
            "check; channels may not deliver there."
        )
    reason = address_is_refused(ip)
    return None if reason is None else refused_message(host, ip, reason)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited event in the process: return early and cheaply.
    scope = _scope.get()
    if scope is None or event not in _EVENTS:
        return
    sock, address = args[0], args[1]
    if event == "socket.sendmsg" and address is None:
        return  # a connected socket: its address was vetted at connect
    reason = refusal(sock, address)
    if reason is not None:
        scope.refuse(reason)
        raise ConnectionVetoed(f"Destination refused: {reason}")


def _install() -> None:
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            # Audit hooks cannot be removed: this one does nothing outside a scope.
            sys.addaudithook(_hook)
            _installed = True
