"""`GET /api/v1/stream` (Server-Sent Events), held on the web front's event loop.

Each open stream costs a coroutine, a small queue and a socket; no Django thread.

1. The request goes to Django once, on a thread, marked as one the front can hold (a
   header the client cannot forge: any copy it sent is dropped). The view
   (`monitoring_site.stream_api`) authenticates and authorises it as any operator
   endpoint, and answers a grant: the sources and metrics to send, and the values to
   start with. Anything else it answers (401, 403, 400, 503) goes to the client as is.
2. The front answers `text/event-stream`: a `ready` event, the latest values when asked
   for, then, with `Last-Event-ID`, the events missed meanwhile (or `reset` when they
   are no longer kept), then each event as it is published.
3. One reader per process follows the event store (a Redis stream `core.events` writes,
   `monitoring_site.stream_sources` reads) with a blocking read and puts each entry,
   encoded once, on the queue of every stream that may see it. A stream whose client
   reads too slowly to keep its queue below `QUEUE_LIMIT` is ended; its client
   reconnects with `Last-Event-ID` and is sent what it missed from the store.
4. Latest values (`?metrics=`) are read for every stream of the process at once, every
   `TRADEWATCH_STREAM_METRICS_SECONDS`, on one thread; each stream is sent the sources
   whose values changed.

A `: keepalive` comment goes out on an idle stream every
`TRADEWATCH_STREAM_KEEPALIVE_SECONDS` (15), so proxies keep the connection; the
credentials are checked again every `TRADEWATCH_STREAM_RECHECK_SECONDS` (a revoked token
ends the stream). At most `TRADEWATCH_STREAM_MAX_CLIENTS` streams per process: one more
is answered 503 with `Retry-After`, before any work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from django.core.serializers.json import DjangoJSONEncoder

from monitoring_site.front_parts import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    answer,
    disconnected,
    django_answer,
    header,
)
from monitoring_site.stream_sources import (
    READ_BLOCK_SECONDS,
    Entry,
    Store,
    ValuesReader,
    entry_key,
    redis_store,
    thread_values_reader,
)

logger = logging.getLogger(__name__)


PATH: Final = "/api/v1/stream"
MARK: Final = b"x-tradewatch-front-streams"
GRANT: Final = b"x-tradewatch-stream-grant"
# Entries waiting for one slow client before its stream is ended (it resumes from the store).
QUEUE_LIMIT: Final = 1000
# Browsers' EventSource waits this long (ms) before reconnecting.
RETRY_MS: Final = 2000
BUSY_RETRY_AFTER_SECONDS: Final = 5
BUSY: Final = (
    "This web process holds as many event streams as it may "
    "(TRADEWATCH_STREAM_MAX_CLIENTS); try again shortly."
)
# How long a new stream waits for the process's reader to reach the event store.
STORE_WAIT_SECONDS: Final = 5.0


def frame(kind: str, data: Any) -> bytes:
    """An event without an id (not replayed): `ready`, `reset`, `metrics`."""
    text = json.dumps(data, separators=(",", ":"), cls=DjangoJSONEncoder)
    return f"event: {kind}\ndata: {text}\n\n".encode()


KEEPALIVE: Final = b": keepalive\n\n"


# --- one stream -------------------------------------------------------------------------------


@dataclass(eq=False)
class Stream:
    """One client's stream: what it may see, and what waits to be sent to it."""

    source_ids: frozenset[int] | None
    metrics: tuple[str, ...] | None
    queue: asyncio.Queue[Entry] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False
    # Latest values sent, per source: the JSON of its series.
    values: dict[int, str] = field(default_factory=dict)
    pending_values: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(4))
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def may_see(self, entry: Entry) -> bool:
        if self.source_ids is None:
            return True
        return entry.source_id is not None and entry.source_id in self.source_ids

    def offer(self, entry: Entry) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True
        self.wake.set()

    def offer_values(self, payload: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # older ones still unsent: skip one
            self.pending_values.put_nowait(payload)
        self.wake.set()


def source_json(series: list[dict[str, Any]]) -> str:
    """One source's series as sent (and compared with what was sent before)."""
    return json.dumps(series, separators=(",", ":"), cls=DjangoJSONEncoder)


# --- the process's reader and its streams --------------------------------------------------


class Hub:
    """Follows the store and hands each entry to every stream; reads latest values."""

    def __init__(self, store: Store, values: ValuesReader, values_interval: float) -> None:
        self.store = store
        self.values = values
        self.values_interval = values_interval
        self.streams: set[Stream] = set()
        self.position = "0-0"
        self._reader: asyncio.Task[None] | None = None
        self._values: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None

    async def join(self, stream: Stream) -> None:
        """Follow the store for `stream` from now on (what came before: `store.replay`)."""
        self.streams.add(stream)
        if self._reader is None or self._reader.done():
            self._started = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read())
        if stream.metrics is not None and (self._values is None or self._values.done()):
            self._values = asyncio.create_task(self._read_values())
        assert self._started is not None
        await asyncio.shield(self._started)

    def leave(self, stream: Stream) -> None:
        self.streams.discard(stream)

    async def _read(self) -> None:
        started = self._started
        assert started is not None
        while not started.done():
            try:
                self.position = await self.store.newest()
                started.set_result(None)
            except Exception as exc:
                logger.warning("event stream unreadable (%s); trying again", exc)
                await asyncio.sleep(1)
        failed = False
        while self.streams:
            try:
                if failed:  # what was published meanwhile, unless it is gone
                    missed = await self.store.replay(self.position)
                    if missed is None:
                        self._reset_everyone()
                        self.position = await self.store.newest()
                        missed = []
                    failed = False
                    entries = missed
                else:
                    entries = await self.store.read(self.position, READ_BLOCK_SECONDS)
            except Exception as exc:
                logger.warning("event stream unreadable (%s); trying again", exc)
                failed = True
                await asyncio.sleep(1)
                continue
            for entry in entries:
                self.position = entry.id
                for stream in list(self.streams):
                    if stream.may_see(entry):
                        stream.offer(entry)

    def _reset_everyone(self) -> None:
        for stream in list(self.streams):
            stream.overflowed = True  # ends it; the client resumes and is told to reset
            stream.wake.set()

    async def _read_values(self) -> None:
        while any(stream.metrics is not None for stream in self.streams):
            await asyncio.sleep(self.values_interval)
            wanting = [stream for stream in self.streams if stream.metrics is not None]
            if not wanting:
                return
            sources: set[int] | None = set()
            for stream in wanting:
                if stream.source_ids is None or sources is None:
                    sources = None
                else:
                    sources |= stream.source_ids
            names = sorted({name for stream in wanting for name in stream.metrics or ()})
            try:
                found = await self.values(None if sources is None else sorted(sources), names)
            except Exception as exc:
                logger.warning("latest values unreadable for the event stream (%s)", exc)
                continue
            self._hand_out(found, wanting)

    @staticmethod
    def _hand_out(found: list[dict[str, Any]], streams: list[Stream]) -> None:
        encoded: dict[tuple[tuple[str, ...], int], str] = {}
        now = json.dumps(datetime.now(UTC), cls=DjangoJSONEncoder)
        for stream in streams:
            names = stream.metrics or ()
            wanted = set(names)
            changed = []
            for source in found:
                if stream.source_ids is not None and source["id"] not in stream.source_ids:
                    continue
                key = (names, source["id"])
                if key not in encoded:
                    series = [item for item in source["metrics"] if item["name"] in wanted]
                    encoded[key] = source_json(series)
                text = encoded[key]
                if stream.values.get(source["id"]) != text:
                    stream.values[source["id"]] = text
                    changed.append(
                        f'{{"id":{source["id"]},"name":{json.dumps(source["name"])},'
                        f'"metrics":{text}}}'
                    )
            if changed:
                body = f'{{"generated_at":{now},"sources":[{",".join(changed)}]}}'
                stream.offer_values(f"event: metrics\ndata: {body}\n\n".encode())


# --- the ASGI layer -------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSettings:
    max_clients: int
    keepalive_seconds: float
    recheck_seconds: float
    values_seconds: float


def stream_settings() -> StreamSettings:
    from django.conf import settings

    return StreamSettings(
        max_clients=int(settings.TRADEWATCH_STREAM_MAX_CLIENTS),
        keepalive_seconds=float(settings.TRADEWATCH_STREAM_KEEPALIVE_SECONDS),
        recheck_seconds=float(settings.TRADEWATCH_STREAM_RECHECK_SECONDS),
        values_seconds=float(settings.TRADEWATCH_STREAM_METRICS_SECONDS),
    )


class EventStreams:
    """Holds `GET /api/v1/stream` on the event loop (see the module); passes the rest on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Callable[[], Store] = redis_store,
        values: Callable[[], ValuesReader] = thread_values_reader,
        settings: Callable[[], StreamSettings] = stream_settings,
    ) -> None:
        self.app = app
        self._store = store
        self._values = values
        self._settings = settings
        self._hub: Hub | None = None
        self._config: StreamSettings | None = None
        self.open = 0

    @property
    def config(self) -> StreamSettings:
        if self._config is None:
            self._config = self._settings()
        return self._config

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            self._hub = Hub(self._store(), self._values(), self.config.values_seconds)
        return self._hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != PATH or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != MARK]
        if self.open >= self.config.max_clients:
            await _refuse(send, scope, BUSY)
            return
        self.open += 1
        try:
            scope = {**scope, "headers": [*headers, (MARK, b"1")]}
            answered = await django_answer(self.app, scope)
            grant = _grant(answered)
            if grant is None:
                for message in answered:
                    await send(message)
                return
            await self._stream(scope, grant, answered, receive, send)
        finally:
            self.open -= 1

    async def _stream(
        self, scope: Scope, grant: dict[str, Any], answered: list[Message], receive: Receive,
        send: Send,
    ) -> None:  # fmt: skip
        config = self.config
        ids = grant.get("source_ids")
        names = grant.get("metrics")
        stream = Stream(
            source_ids=None if ids is None else frozenset(int(i) for i in ids),
            metrics=None if names is None else tuple(names),
        )
        opening = [
            f"retry: {RETRY_MS}\n".encode(),
            frame(
                "ready",
                {
                    "user": grant.get("user"),
                    "source_ids": ids,
                    "metrics": names,
                    "keepalive_seconds": config.keepalive_seconds,
                },
            ),
        ]
        if grant.get("values") is not None:
            for source in grant["values"].get("sources", []):
                stream.values[source["id"]] = source_json(source["metrics"])
            opening.append(frame("metrics", grant["values"]))
        hub = self.hub
        gone = asyncio.ensure_future(disconnected(receive))
        gone.add_done_callback(lambda _: stream.wake.set())
        try:
            try:
                # Joined before the replay is read: no event can fall in between.
                await asyncio.wait_for(hub.join(stream), STORE_WAIT_SECONDS)
                last_sent = await self._replay(stream, scope, opening)
            except (TimeoutError, OSError, ConnectionError) as exc:
                logger.warning("event stream refused: the event store is unreachable (%s)", exc)
                await _refuse(send, scope, "The event store (Redis) does not answer; try again.")
                return
            request_id = header(answered[0], b"x-request-id")
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache, no-store"),
                        # nginx would otherwise buffer the answer and hold every event.
                        (b"x-accel-buffering", b"no"),
                        *([(b"x-request-id", request_id)] if request_id else []),
                    ],
                }
            )
            if await _write(send, b"".join(opening)):
                await self._follow(stream, scope, last_sent, gone, send)
        finally:
            hub.leave(stream)
            gone.cancel()
            with contextlib.suppress(BaseException):
                await gone
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _replay(
        self, stream: Stream, scope: Scope, opening: list[bytes]
    ) -> tuple[int, int] | None:
        """Add what a resuming client missed (or `reset`) to `opening`; the last id added."""
        resume = header(scope, b"last-event-id")
        if not resume:
            return None
        missed = await self.hub.store.replay(resume.decode("latin-1").strip())
        if missed is None:
            reason = "Events after Last-Event-ID are no longer kept: read the current state again."
            opening.append(frame("reset", {"reason": reason}))
            return None
        opening.extend(entry.frame for entry in missed if stream.may_see(entry))
        return missed[-1].key if missed else None

    async def _follow(
        self,
        stream: Stream,
        scope: Scope,
        last_sent: tuple[int, int] | None,
        gone: asyncio.Future[Any],
        send: Send,
    ) -> None:
        config, hub = self.config, self.hub
        loop = asyncio.get_running_loop()
        recheck_at = loop.time() + config.recheck_seconds
        while True:
            # One event wakes it: an entry, values, or the client hanging up (no task or
            # future made per wake: a change wakes every stream of the process at once).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.keepalive_seconds):
                    await stream.wake.wait()
            if gone.done() or stream.overflowed:
                return
            stream.wake.clear()
            out: list[bytes] = []
            while not stream.queue.empty():
                entry = stream.queue.get_nowait()
                if last_sent is None or entry.key > last_sent:
                    out.append(entry.frame)
                    last_sent = entry.key
            while not stream.pending_values.empty():
                out.append(stream.pending_values.get_nowait())
            if not out:
                # Every entry up to the reader's position that this client may see has
                # been sent: an id alone moves its Last-Event-ID past those it may not,
                # so a reconnect after long quiet is not told to reset for nothing.
                position = _key_or_none(hub.position)
                if position is not None and (last_sent is None or position > last_sent):
                    out.append(f"id: {hub.position}\n\n".encode())
                    last_sent = position
                out.append(KEEPALIVE)
            if not await _write(send, b"".join(out)):
                return
            if loop.time() >= recheck_at:
                recheck_at = loop.time() + config.recheck_seconds
                if _grant(await django_answer(self.app, scope)) is None:
                    return  # no longer allowed: the client's reconnect is told why


def _key_or_none(entry_id: str) -> tuple[int, int] | None:
    key = entry_key(entry_id)
    return None if key == (0, 0) else key


async def _write(send: Send, body: bytes) -> bool:
    """Send a piece of the stream; False when the client is gone."""
    try:
        await send({"type": "http.response.body", "body": body, "more_body": True})
    except Exception:
        return False
    return True


async def _refuse(send: Send, scope: Scope, message: str) -> None:
    """503 with Retry-After, in the API's error shape, with the caller's request id."""
    from monitoring_site.logcontext import request_id_from

    given = header(scope, b"x-request-id") or b""
    request_id = request_id_from(given.decode("latin-1") or None)
    extra = [
        (b"retry-after", str(BUSY_RETRY_AFTER_SECONDS).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await answer(send, 503, message, extra)


def _grant(answered: list[Message]) -> dict[str, Any] | None:
    """The view's grant, or None when it answered anything else."""
    start = answered[0] if answered else {}
    if start.get("status") != 200 or header(start, GRANT) != b"1":
        return None
    body = b"".join(m.get("body", b"") for m in answered if m.get("type") == "http.response.body")
    grant: dict[str, Any] = json.loads(body)
    return grant
