"""Long polls held on the front's event loop: woken by a change, answered at the deadline,
never more of them waiting than allowed, and nothing held without the front's mark."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from monitoring_site.held_polls import HOLD, MARK, HeldPolls

T = TypeVar("T")


class FakeDjango:
    """Answers like the control view: 304 with a hold while unchanged and marked, else 200."""

    def __init__(self) -> None:
        self.state = "active"
        self.calls = 0
        self.marks: list[bool] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        marked = (MARK, b"1") in scope["headers"]
        self.marks.append(marked)
        await receive()
        if self.state == "active":
            headers = [(b"etag", b'"a"')] + ([(HOLD, b"1")] if marked else [])
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"halted"})


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own: a loop another test left running in this
    thread (the browser tests' Playwright) would refuse a second one here."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def scope(**extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/api/v1/control", "headers": [], **extra}


async def poll(front: HeldPolls, request: dict[str, Any] | None = None) -> list[Any]:
    sent: list[Any] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await front(request or scope(), receive, send)
    return sent


class FakeGeneration:
    """A generation a test bumps; `announced` wakes the watcher as Redis pub/sub would."""

    def __init__(self, *, announces: bool) -> None:
        self.value = 0
        self.announces = announces
        self.announced = asyncio.Event()

    def bump(self) -> None:
        self.value += 1
        if self.announces:
            self.announced.set()

    async def read(self) -> object:
        return self.value

    async def news(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.announced.wait(), timeout)
        except TimeoutError:
            return
        self.announced = asyncio.Event()


def front_with_generation(
    app: FakeDjango, *, announces: bool = False, interval: float = 0.01, **options: Any
) -> tuple[HeldPolls, FakeGeneration]:
    generation = FakeGeneration(announces=announces)
    front = HeldPolls(app, generation=lambda: generation, interval=interval, **options)
    return front, generation


def test_it_wakes_a_waiting_poll_when_the_state_changes() -> None:
    app = FakeDjango()
    front, generation = front_with_generation(app)

    async def scenario() -> list[Any]:
        waiting = asyncio.ensure_future(poll(front))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        app.state = "halted"
        generation.bump()
        return await asyncio.wait_for(waiting, 2)

    sent = run(scenario())
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"halted"
    assert front.watcher.waiting == 0


def test_it_answers_the_kept_304_without_its_hold_at_the_deadline() -> None:
    app = FakeDjango()
    front, _ = front_with_generation(app)
    sent = run(asyncio.wait_for(poll(front), 5))
    assert sent[0]["status"] == 304
    assert all(name != HOLD for name, _ in sent[0]["headers"])
    assert app.calls == 1


def test_another_sources_change_keeps_it_waiting() -> None:
    app = FakeDjango()
    front, generation = front_with_generation(app)

    async def scenario() -> list[Any]:
        waiting = asyncio.ensure_future(poll(front))
        await asyncio.sleep(0.1)
        generation.bump()  # a change, but this source's answer is the same
        await asyncio.sleep(0.1)
        assert not waiting.done()
        return await asyncio.wait_for(waiting, 5)

    sent = run(scenario())
    assert sent[0]["status"] == 304
    assert app.calls == 2


def test_past_the_limit_django_answers_at_once() -> None:
    app = FakeDjango()
    front, _ = front_with_generation(app, max_waiting=1)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(poll(front))
        await asyncio.sleep(0.05)
        second = await asyncio.wait_for(poll(front), 0.5)
        await first
        return second

    second = run(scenario())
    assert second[0]["status"] == 304
    assert app.marks == [True, False]


def test_a_forged_mark_is_dropped_and_other_paths_pass_through() -> None:
    app = FakeDjango()
    front, _ = front_with_generation(app, max_waiting=1)
    front.watcher.waiting = 1  # full: nothing may be held
    run(poll(front, scope(headers=[(MARK, b"1")])))
    assert app.marks == [False]
    run(poll(front, scope(path="/api/v1/metrics", headers=[(MARK, b"1")])))
    assert app.marks == [False, True]  # not ours to touch


def test_an_announced_change_wakes_it_before_the_next_read() -> None:
    app = FakeDjango()
    # Reads only every 10 s: only the announcement can wake it within the test.
    front, generation = front_with_generation(app, announces=True, interval=10.0)

    async def scenario() -> list[Any]:
        waiting = asyncio.ensure_future(poll(front))
        await asyncio.sleep(0.1)
        app.state = "halted"
        generation.bump()
        return await asyncio.wait_for(waiting, 2)

    assert run(scenario())[0]["status"] == 200
