"""The front's event streams on their own: the grant asked of Django once, the cap, a
forged mark, a slow client, keepalives moving `Last-Event-ID`, and the Redis store's
replay (in order; `None` once an id is older than what is kept)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from django.conf import settings
from django.core.cache import cache

from core.events import ALERT, Event, events_publish, stream_key
from monitoring_site.event_stream import (
    GRANT,
    KEEPALIVE,
    MARK,
    QUEUE_LIMIT,
    EventStreams,
    StreamSettings,
)
from monitoring_site.stream_sources import Entry, redis_store

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


class FakeDjango:
    """Answers like the stream view: a grant when marked, 401 without a token."""

    def __init__(self, grant: dict[str, Any] | None = None) -> None:
        self.grant = grant or {"user": "vera", "source_ids": None, "metrics": None}
        self.marks: list[bool] = []
        self.allowed = True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        self.marks.append((MARK, b"1") in scope["headers"])
        if not self.allowed:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b'{"errors": []}'})
            return
        headers = [(b"x-request-id", b"r-1")]
        if self.marks[-1]:
            headers.append((GRANT, b"1"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(self.grant).encode()})


class FakeStore:
    """Entries a test appends; `read` wakes when one is."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.appended = asyncio.Event()
        self.oldest_kept = 0

    def append(self, kind: str, source: int | None, data: dict[str, Any]) -> Entry:
        entry = Entry.of(f"{len(self.entries) + 1}-0", kind, str(source or ""), json.dumps(data))
        self.entries.append(entry)
        self.appended.set()
        return entry

    async def newest(self) -> str:
        return self.entries[-1].id if self.entries else "0-0"

    async def read(self, after: str, timeout: float) -> list[Entry]:
        position = int(after.split("-")[0])
        if len(self.entries) <= position:
            self.appended.clear()
            try:
                await asyncio.wait_for(self.appended.wait(), timeout)
            except TimeoutError:
                return []
        return self.entries[position:]

    async def replay(self, after: str) -> list[Entry] | None:
        position = int(after.split("-")[0])
        if position < self.oldest_kept:
            return None
        return self.entries[position:]


def front(
    django: FakeDjango, store: FakeStore, *, max_clients: int = 10, keepalive: float = 30
) -> EventStreams:
    async def no_values(source_ids: Any, names: Any) -> list[dict[str, Any]]:
        return []

    return EventStreams(
        django,
        store=lambda: store,
        values=lambda: no_values,
        settings=lambda: StreamSettings(
            max_clients=max_clients,
            keepalive_seconds=keepalive,
            recheck_seconds=3600,
            values_seconds=1,
        ),
    )


class Client:
    """One request to the front: what it was sent, and a way to hang up."""

    def __init__(self, streams: EventStreams, headers: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
        self.sent: list[MutableMapping[str, Any]] = []
        self.hung_up = asyncio.Event()
        self.got = asyncio.Event()
        scope = {"type": "http", "method": "GET", "path": "/api/v1/stream", "headers": headers}
        self.task = asyncio.create_task(streams(scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        await self.hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        self.got.set()

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent if "body" in m).decode()

    async def until(self, fragment: str, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while fragment not in self.text:
                self.got.clear()
                await self.got.wait()

    async def close(self) -> None:
        self.hung_up.set()
        await asyncio.wait_for(self.task, 5)


def test_it_asks_django_once_with_its_mark_then_streams_what_is_published() -> None:
    django, store = FakeDjango(), FakeStore()
    streams = front(django, store)

    async def scenario() -> Client:
        client = Client(streams, [(MARK, b"forged")])
        await client.until("event: ready")
        store.append(ALERT, 7, {"alert_id": 1})
        await client.until('"alert_id": 1')
        await client.close()
        return client

    client = run(scenario())
    assert django.marks == [True]  # asked once; the forged copy was dropped, its own added
    start = client.sent[0]
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (b"x-request-id", b"r-1") in start["headers"]
    assert client.text.startswith("retry: 2000\nevent: ready\n")
    assert 'id: 1-0\nevent: alert\ndata: {"alert_id": 1}\n\n' in client.text
    assert streams.open == 0


def test_what_django_refuses_goes_to_the_client_as_django_answered_it() -> None:
    django, store = FakeDjango(), FakeStore()
    django.allowed = False
    client = run(_one_answer(front(django, store)))
    assert client.status == 401
    assert client.text == '{"errors": []}'


async def _one_answer(streams: EventStreams) -> Client:
    client = Client(streams)
    await asyncio.wait_for(client.task, 5)
    return client


def test_one_stream_past_the_cap_is_answered_503_with_retry_after_and_no_django() -> None:
    django, store = FakeDjango(), FakeStore()
    streams = front(django, store, max_clients=2)

    async def scenario() -> Client:
        held = [Client(streams), Client(streams)]
        for client in held:
            await client.until("event: ready")
        refused = await _one_answer(streams)
        for client in held:
            await client.close()
        return refused

    refused = run(scenario())
    assert refused.status == 503
    assert (b"retry-after", b"5") in refused.sent[0]["headers"]
    assert "TRADEWATCH_STREAM_MAX_CLIENTS" in json.loads(refused.text)["errors"][0]["message"]
    assert len(django.marks) == 2  # the third was refused before Django was asked


def test_a_stream_for_some_sources_skips_the_others_and_keepalives_move_its_id() -> None:
    django, store = FakeDjango({"user": "v", "source_ids": [7], "metrics": None}), FakeStore()
    streams = front(django, store, keepalive=0.05)

    async def scenario() -> Client:
        client = Client(streams)
        await client.until("event: ready")
        store.append(ALERT, 8, {"alert_id": 80})
        store.append(ALERT, None, {"check": "tradewatch itself"})
        await client.until("id: 2-0\n\n: keepalive")
        store.append(ALERT, 7, {"alert_id": 70})
        await client.until('"alert_id": 70')
        await client.close()
        return client

    client = run(scenario())
    assert '"alert_id": 80' not in client.text
    assert "tradewatch itself" not in client.text
    assert KEEPALIVE.decode() in client.text


def test_a_resuming_client_gets_what_it_missed_in_order_and_an_old_id_a_reset() -> None:
    django, store = FakeDjango(), FakeStore()
    for n in range(1, 5):
        store.append(ALERT, 7, {"alert_id": n})
    store.oldest_kept = 2
    streams = front(django, store)

    async def scenario() -> tuple[Client, Client]:
        resumed = Client(streams, [(b"last-event-id", b"2-0")])
        await resumed.until('"alert_id": 4')
        stale = Client(streams, [(b"last-event-id", b"1-0")])
        await stale.until("event: reset")
        await resumed.close()
        await stale.close()
        return resumed, stale

    resumed, stale = run(scenario())
    text = resumed.text
    assert '"alert_id": 2' not in text
    assert text.index('"alert_id": 3') < text.index('"alert_id": 4')
    assert "event: alert" not in stale.text


def test_a_client_too_slow_for_its_queue_is_ended_to_resume_from_the_store() -> None:
    django, store = FakeDjango(), FakeStore()
    streams = front(django, store)

    async def scenario() -> Client:
        client = Client(streams)
        await client.until("event: ready")
        (stream,) = streams.hub.streams
        # The reader hands out faster than this client's writes: past the queue, it ends.
        for n in range(QUEUE_LIMIT + 1):
            stream.offer(Entry.of(f"{n + 1}-0", ALERT, "", "{}"))
        await asyncio.wait_for(client.task, 5)
        return client

    client = run(scenario())
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert streams.hub.streams == set()


@pytest.mark.django_db(transaction=True)
def test_the_redis_store_replays_after_an_id_and_not_once_it_is_trimmed() -> None:
    cache.clear()
    events_publish([Event(ALERT, 7, {"alert_id": n}) for n in range(1, 4)])
    store = redis_store()

    async def scenario() -> tuple[Any, ...]:
        newest = await store.newest()
        (first, *rest) = await store.read("0-0", 0.1)
        after_first = await store.replay(first.id)
        from_the_newest = await store.replay(newest)
        older = await store.replay("1-0")
        nonsense = await store.replay("soon")
        return first, rest, after_first, from_the_newest, older, nonsense

    first, rest, after_first, from_the_newest, older, nonsense = run(scenario())
    assert json.loads(first.frame.decode().split("data: ")[1]) == {"alert_id": 1}
    assert [entry.id for entry in after_first] == [entry.id for entry in rest]
    assert from_the_newest == []
    assert older is None  # older than the oldest kept entry: may have missed some
    assert nonsense is None
    assert settings.TRADEWATCH_STREAM_REPLAY_EVENTS >= 1000
    assert stream_key().endswith("event-stream")
