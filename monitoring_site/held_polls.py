"""Long polls of `GET /api/v1/control?wait=N`, held on the event loop, not on a thread.

A web process runs Django on a few threads (`WEB_THREADS`, 2 by default). A bot
long-polling its trading state would hold one of them for up to a minute, and a handful
of bots would stop ingestion. So the wait happens here, in the ASGI front:

1. The request goes to Django as usual, marked as one the front can hold (a header the
   client cannot forge: any copy it sent is dropped). Django authenticates it, reads
   the state (no query, see `metrics.control`) and, when the caller already knows it
   (`If-None-Match`), answers 304 with `X-Tradewatch-Hold: N`.
2. The front keeps that answer and waits on the event loop, costing a coroutine and a
   timer, until the trading controls' generation changes in the shared cache or N
   seconds pass. One watcher per process, running only while someone waits, is woken
   by the change's announcement (Redis pub/sub, sent when it commits) and reads the
   generation every `TRADEWATCH_CONTROL_POLL_MS` (25 ms) in case one was missed.
3. On a change, the request goes to Django again (a few milliseconds of a thread):
   a new state is answered 200, an unchanged one (another source's change) waits on.
   After N seconds the kept 304 goes out.

At most `TRADEWATCH_CONTROL_MAX_WAITING` (1,000) requests wait per process; past that
Django answers at once, as it does without this front (tests, `runserver`), and the
client simply asks again. A change wakes every waiter of the process, so a change costs
one short Django request per waiting bot: fine for hundreds of bots per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from monitoring_site.front_parts import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    disconnected,
    django_answer,
)

logger = logging.getLogger(__name__)


PATH = "/api/v1/control"
MARK = b"x-tradewatch-front-holds"
HOLD = b"x-tradewatch-hold"


class Generation(Protocol):
    """Where the trading controls' generation is read, and their changes announced."""

    async def read(self) -> object:
        """The current generation."""
        ...

    async def news(self, timeout: float) -> None:
        """Return when a change is announced, or after `timeout` seconds."""
        ...


class ChangeWatcher:
    """Wakes the waiting requests of this process when the controls' generation changes.

    A change is announced (Redis pub/sub) when it commits, which wakes the watcher at
    once; the generation is also read every `interval` seconds, so a missed announcement
    (a reconnect) costs at most that long.
    """

    def __init__(self, generation: Generation, interval: float) -> None:
        self.generation = generation
        self.interval = interval
        self.waiting = 0
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wait(self) -> asyncio.Event:
        """The event the next change sets (the watcher runs while anyone waits)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())
        return self.changed

    async def _watch(self) -> None:
        seen: object = await self._read()
        while self.waiting > 0:
            try:
                await self.generation.news(self.interval)
            except Exception:  # the cache away: fall back to reading now and then
                await asyncio.sleep(self.interval)
            now = await self._read()
            if now != seen:
                seen = now
                changed, self.changed = self.changed, asyncio.Event()
                changed.set()

    async def _read(self) -> object:
        try:
            return await self.generation.read()
        except Exception as exc:  # the cache away: wake everyone now and then
            logger.warning("trading controls' generation unreadable (%s)", exc)
            return object()


class RedisGeneration:
    """The generation in the cache's Redis, and the announcements of its changes."""

    def __init__(self, url: str, key: str, channel: str) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.from_url(url)
        self.key = key
        self.channel = channel
        self._pubsub: Any = None

    async def read(self) -> object:
        return await self.client.get(self.key)

    async def news(self, timeout: float) -> None:
        if self._pubsub is None:
            self._pubsub = self.client.pubsub()
            await self._pubsub.subscribe(self.channel)
        try:
            await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except Exception:
            self._pubsub = None  # subscribe again next time
            raise


class NoGeneration:
    """Without Redis (the embedded mode): nothing to watch; waits end at their deadline."""

    async def read(self) -> object:
        return None

    async def news(self, timeout: float) -> None:
        await asyncio.sleep(timeout)


def redis_generation() -> Generation:
    """The cache's Redis generation of the trading controls (asyncio client)."""
    from core.redis_cache import cache_key, redis_cache_url
    from metrics.control import CONTROLS_ANNOUNCED, CONTROLS_GENERATION

    url = redis_cache_url()
    if url is None:
        return NoGeneration()
    return RedisGeneration(url, cache_key(CONTROLS_GENERATION), cache_key(CONTROLS_ANNOUNCED))


class HeldPolls:
    """Holds `GET /api/v1/control?wait=N` answers on the event loop (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        generation: Callable[[], Generation] = redis_generation,
        max_waiting: int | None = None,
        interval: float | None = None,
    ) -> None:
        self.app = app
        self._generation = generation
        self.max_waiting = max_waiting or int(
            os.environ.get("TRADEWATCH_CONTROL_MAX_WAITING", "1000")
        )
        self.interval = interval or int(os.environ.get("TRADEWATCH_CONTROL_POLL_MS", "25")) / 1000
        self._watcher: ChangeWatcher | None = None

    @property
    def watcher(self) -> ChangeWatcher:
        if self._watcher is None:
            self._watcher = ChangeWatcher(self._generation(), self.interval)
        return self._watcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != PATH or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != MARK]
        watcher = self.watcher
        if watcher.waiting >= self.max_waiting:
            await self.app({**scope, "headers": headers}, receive, send)
            return
        scope = {**scope, "headers": [*headers, (MARK, b"1")]}
        answer = await django_answer(self.app, scope)
        hold = _hold_seconds(answer)
        if hold is None:
            await _replay(answer, send)
            return
        deadline = time.monotonic() + hold
        watcher.waiting += 1
        gone = asyncio.ensure_future(disconnected(receive))  # hanging up ends the wait
        try:
            while (left := deadline - time.monotonic()) > 0:
                changed = asyncio.ensure_future(watcher.wait().wait())
                done, _ = await asyncio.wait(
                    {changed, gone}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                changed.cancel()
                if gone in done:
                    return
                if changed not in done:
                    break
                fresh = await django_answer(self.app, scope)
                if _hold_seconds(fresh) is None:
                    answer = fresh
                    break
        finally:
            watcher.waiting -= 1
            gone.cancel()
            with contextlib.suppress(BaseException):
                await gone
        await _replay(answer, send)


def _hold_seconds(answer: list[Message]) -> float | None:
    start = answer[0] if answer else {}
    if start.get("type") != "http.response.start" or start.get("status") != 304:
        return None
    for name, value in start.get("headers", []):
        if name.lower() == HOLD:
            try:
                return float(value)
            except ValueError:
                return None
    return None


async def _replay(answer: list[Message], send: Send) -> None:
    for message in answer:
        if message.get("type") == "http.response.start":
            message = {
                **message,
                "headers": [(k, v) for k, v in message.get("headers", []) if k.lower() != HOLD],
            }
        await send(message)
