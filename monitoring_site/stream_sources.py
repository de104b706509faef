"""What feeds the live event streams: the event store, and the latest values.

The store is the Redis stream `core.events` appends every change to (the writing side);
here it is read by the web front: the newest id, a blocking read of what follows an id,
and the replay of what a reconnecting client missed. Each entry is encoded as its SSE
frame once, for every stream that is sent it. Latest values (`?metrics=`) are read on
one thread of their own, with the selector the realtime endpoint uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

# How long one blocking read of the store waits before asking again.
READ_BLOCK_SECONDS: Final = 5.0


# --- entries --------------------------------------------------------------------------------


def entry_key(entry_id: str) -> tuple[int, int]:
    """A Redis stream id (`1712345678901-0`) as a pair that orders like the stream.
    ValueError when it is no such id."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


@dataclass(frozen=True)
class Entry:
    """One stored event: its id, kind, source (None: Tradewatch itself), and its SSE frame."""

    id: str
    kind: str
    source_id: int | None
    frame: bytes

    @property
    def key(self) -> tuple[int, int]:
        return entry_key(self.id)

    @classmethod
    def of(cls, entry_id: str, kind: str, source: str, data: str) -> Entry:
        frame = f"id: {entry_id}\nevent: {kind}\ndata: {data}\n\n".encode()
        return cls(entry_id, kind, int(source) if source else None, frame)


class Store(Protocol):
    """Where events are kept (`core.events`)."""

    async def newest(self) -> str:
        """The newest entry's id ("0-0" when there is none)."""
        ...

    async def read(self, after: str, timeout: float) -> list[Entry]:
        """Entries after `after`, waiting up to `timeout` seconds for one."""
        ...

    async def replay(self, after: str) -> list[Entry] | None:
        """Every entry after `after`, or None when some may no longer be kept."""
        ...


FIELDS: Final = (b"kind", b"source", b"data")


class RedisStore:
    """The event stream in the cache's Redis (asyncio client)."""

    def __init__(self, url: str, key: str, replay_limit: int) -> None:
        import redis.asyncio as aioredis

        # Untyped: redis-py's stubs type replies for either decoding, never one of them.
        # Past the blocking read's own wait (redis-py's default, 5 s, would cut it short).
        self.client: Any = aioredis.from_url(
            url, socket_timeout=READ_BLOCK_SECONDS + 10, socket_connect_timeout=5
        )
        self.key = key
        self.replay_limit = replay_limit

    @staticmethod
    def _entries(rows: Sequence[Any]) -> list[Entry]:
        found = []
        for raw_id, fields in rows:
            kind, source, data = (bytes(fields.get(n, b"")).decode() for n in FIELDS)
            found.append(Entry.of(raw_id.decode(), kind, source, data))
        return found

    async def newest(self) -> str:
        rows = await self.client.xrevrange(self.key, "+", "-", count=1)
        return rows[0][0].decode() if rows else "0-0"

    async def read(self, after: str, timeout: float) -> list[Entry]:
        found = await self.client.xread({self.key: after}, count=500, block=int(timeout * 1000))
        return self._entries(found[0][1]) if found else []

    async def replay(self, after: str) -> list[Entry] | None:
        try:
            wanted = entry_key(after)
        except ValueError:
            return None
        first = await self.client.xrange(self.key, "-", "+", count=1)
        last = await self.client.xrevrange(self.key, "+", "-", count=1)
        # Older than the oldest kept entry, or from a stream that is gone: entries may
        # have been trimmed in between, so the client must start afresh.
        if not first or wanted < entry_key(first[0][0].decode()):
            return None
        if wanted > entry_key(last[0][0].decode()):
            return None
        rows = await self.client.xrange(self.key, f"({after}", "+", count=self.replay_limit)
        return self._entries(rows)


class NoStore:
    """Without Redis: nothing is published (the view refuses streams before this)."""

    async def newest(self) -> str:
        return "0-0"

    async def read(self, after: str, timeout: float) -> list[Entry]:
        await asyncio.sleep(timeout)
        return []

    async def replay(self, after: str) -> list[Entry] | None:
        return None


def redis_store() -> Store:
    from django.conf import settings

    from core.events import stream_key
    from core.redis_cache import redis_cache_url

    url = redis_cache_url()
    if url is None:
        return NoStore()
    return RedisStore(url, stream_key(), int(settings.TRADEWATCH_STREAM_REPLAY_EVENTS))


ValuesReader = Callable[[list[int] | None, list[str]], Awaitable[list[dict[str, Any]]]]


def thread_values_reader() -> ValuesReader:
    """Latest values read on one thread of their own (it keeps a database connection)."""
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-values")

    def read(source_ids: list[int] | None, names: list[str]) -> list[dict[str, Any]]:
        from django.db import close_old_connections

        from metrics.queries import latest_values

        close_old_connections()
        found = latest_values(source_ids=source_ids, names=names)
        for source in found:
            for series in source["metrics"]:
                series["ts"] = _iso(series["ts"])
        return found

    async def reader(source_ids: list[int] | None, names: list[str]) -> list[dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(thread, read, source_ids, names)

    return reader


def _iso(moment: datetime) -> str:
    """A time as the API writes it (DRF: ISO 8601, UTC as `Z`), so values read here
    compare equal to those the view sent first."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
