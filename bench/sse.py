"""A Server-Sent Events client on httpx (asyncio): many at once, each event timed.

Used by the stream benchmark (`bench.stream`) and the stream's end-to-end tests: each
`Listener` is one real HTTP connection to `GET /api/v1/stream`, parsing the stream as a
browser's EventSource does, and keeping every event (comments too) with the time it
arrived: monotonic (`time.perf_counter`, the same clock in every process of the
machine) and wall-clock (to compare with the time a Redis stream id carries).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    """One event (`event` "message" when unnamed) or comment (`event` "comment"), with
    when it arrived: `at` on the monotonic clock, `wall` as UNIX seconds."""

    event: str
    data: str
    id: str | None
    at: float
    wall: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.data)


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """The events of a stream's lines, as EventSource reads them (`id` only as sent)."""
    event, event_id = "", None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data or event or event_id is not None:
                yield SseEvent(event or "message", "\n".join(data), event_id, time.perf_counter())
            event, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            yield SseEvent("comment", line[1:].strip(), None, time.perf_counter())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


@dataclass
class Listener:
    """One stream client; `run()` reads until the stream ends or the task is cancelled."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    body: bytes = b""
    response_headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    ended: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_event_id(self) -> str | None:
        """What EventSource would send back in `Last-Event-ID`."""
        ids = [event.id for event in self.events if event.id is not None]
        return ids[-1] if ids else None

    async def run(self, client: httpx.AsyncClient) -> None:
        try:
            async with client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                self.response_headers = dict(response.headers)
                if response.status_code != 200:
                    self.body = await response.aread()
                    return
                async for event in sse_events(response.aiter_lines()):
                    self.events.append(event)
                    self._changed.set()
        finally:
            self.ended = True
            self._changed.set()

    async def wait_for(self, match: Callable[[SseEvent], bool], timeout: float) -> SseEvent | None:
        """The first event kept that `match`es, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if match(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0 or self.ended:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def answered(self, timeout: float) -> bool:
        """Whether the server answered (a status, and for a stream its `ready` event)."""
        if await self.wait_for(lambda e: e.event == "ready", timeout) is not None:
            return True
        return self.status is not None and self.status != 200


def is_event(kind: str, **data: Any) -> Callable[[SseEvent], bool]:
    """A matcher: an event of `kind` whose JSON data holds `data`'s items."""

    def match(event: SseEvent) -> bool:
        if event.event != kind:
            return False
        body = event.json()
        return all(body.get(key) == value for key, value in data.items())

    return match
