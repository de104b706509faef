"""What the web front's layers share (`front`, `held_polls`, `event_stream`): ASGI's
types, Django's whole answer to a request the front holds, a client hanging up, and a
short JSON error in the API's shape.

Nothing here imports Django or builds the application (`front` does, at import).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def django_answer(app: ASGIApp, scope: Scope) -> list[Message]:
    """Django's whole answer to the request (a GET: no body to give it)."""
    sent: list[Message] = []
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never: Django does not read past the body
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def disconnected(receive: Receive) -> None:
    """Returns when the client hangs up (after the request's body, already read)."""
    while (await receive()).get("type") != "http.disconnect":
        pass


def header(message: Message, name: bytes) -> bytes | None:
    """The value of header `name` (lower case) in a scope or a response start, if any."""
    for key, value in message.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


async def answer(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A short JSON error, in the API's error shape, with the connection closed after it."""
    body = json.dumps({"errors": [{"index": None, "field": None, "message": detail}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
