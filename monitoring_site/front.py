"""What the web server runs: Django's WSGI application behind a request-buffering front.

The server (Granian, see monitoring_site/webserver.py) reads request headers on its
event loop and closes a connection whose headers take too long. This ASGI layer then
reads the whole body on the same event loop, within a deadline and a size limit, and
only then hands the complete request to one of a few Python threads that run Django
(its sync DRF views, unchanged, through a2wsgi). A client that sends slowly, headers or
body, therefore holds a buffer and a timer, never one of those threads.

It also reads chunked bodies (`Transfer-Encoding: chunked`, no Content-Length): Django
learns a body's length only from Content-Length and would take such a body as empty,
so the buffered body is handed on with its length.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

# Message and Scope: the types of this module's interface too (its tests speak them).
from monitoring_site.front_parts import ASGIApp, Receive, Send, answer
from monitoring_site.front_parts import Message as Message
from monitoring_site.front_parts import Scope as Scope


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int  # a larger body is refused (413) without being read further
    timeout_seconds: float  # the whole body must arrive within this (else 408)


class ClientGone(Exception):
    """The client closed the connection before its body was complete."""


class BodyTooSlow(Exception):
    pass


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length header's value (None when absent; the server checked its form)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)
    return None


def with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """The headers of a body now held whole: its length, no transfer coding."""
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    return [*kept, (b"content-length", str(length).encode("ascii"))]


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    """The request body, or its first `max_bytes` + 1 bytes when it is longer."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if size > max_bytes or not message.get("more_body", False):
            return b"".join(parts)[: max_bytes + 1]


class BufferedRequests:
    """Reads each request's body whole (bounded in size and time) before `app` sees it."""

    def __init__(self, app: ASGIApp, limits: Callable[[], BodyLimits]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits()
        headers = list(scope.get("headers", []))
        length = declared_length(headers)
        if length is not None and length > limits.max_bytes:
            # Refused by Django from the header alone (413 from the API): read nothing.
            body = b""
        else:
            try:
                async with asyncio.timeout(limits.timeout_seconds):
                    body = await read_body(receive, limits.max_bytes)
            except TimeoutError:
                await answer(send, 408, "The request body did not arrive in time.")
                return
            except ClientGone:
                return
            # A chunked body (or one over the limit: limit + 1 bytes, which Django and
            # the API refuse with 413) reaches Django with the length it now has.
            if body and length != len(body):
                scope = {**scope, "headers": with_length(headers, len(body))}
        await self.app(scope, replay(body, receive), send)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the buffered body once, then waits on the real one."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def body_limits() -> BodyLimits:
    from django.conf import settings

    return BodyLimits(
        max_bytes=int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        timeout_seconds=float(settings.TRADEWATCH_BODY_TIMEOUT_SECONDS),
    )


def build() -> ASGIApp:
    """The application of one web process (each Granian worker imports this module)."""
    import sys

    from a2wsgi import WSGIMiddleware

    from monitoring_site.event_stream import EventStreams
    from monitoring_site.held_polls import HeldPolls
    from monitoring_site.memory import collector_tune
    from monitoring_site.wsgi import application as wsgi_application

    # A thread wanting the GIL asks the holder for it after this long (Python's default
    # is 5 ms): a small request then is not held up for several of those at each of its
    # database round trips while a large batch validates in another thread.
    sys.setswitchinterval(0.001)
    collector_tune()

    # A few threads run Django (WEB_THREADS): each keeps its own database connection
    # (CONN_MAX_AGE), and more would only share this process's GIL.
    threads = int(os.environ.get("WEB_THREADS", "2"))
    django = WSGIMiddleware(wsgi_application, workers=max(1, threads))  # type: ignore[arg-type]
    # Long polls of the trading state wait here, on the event loop (held_polls), and so
    # do the live event streams (event_stream): neither holds a Django thread.
    held = HeldPolls(django)  # type: ignore[arg-type]
    return BufferedRequests(EventStreams(held), body_limits)


application = build()
