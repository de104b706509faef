"""The request-buffering front, on its own: bodies read whole, bounded in size and time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from monitoring_site.front import BodyLimits, BufferedRequests, Message, Scope
from monitoring_site.webserver import WebSettings, granian_options


class Recorder:
    """An ASGI app that keeps what it was given: scope and the body it reads."""

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.body = b""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scope = scope
        message = await receive()
        self.body = message["body"]
        assert not message["more_body"]


def run(
    headers: list[tuple[bytes, bytes]],
    messages: Sequence[Message],
    limits: BodyLimits | None = None,
    pause: float = 0.0,
) -> tuple[Recorder, list[Message]]:
    app = Recorder()
    sent: list[Message] = []
    queue = list(messages)

    async def receive() -> Message:
        await asyncio.sleep(pause)
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a client that sends nothing more
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    given = limits or BodyLimits(max_bytes=10, timeout_seconds=5)
    front = BufferedRequests(app, lambda: given)
    # On a thread of its own: a loop another test left running in this thread (the
    # browser tests' Playwright) would refuse a second one here.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, front(scope, receive, send)).result()
    return app, sent


def header(scope: Scope | None, name: bytes) -> list[bytes]:
    assert scope is not None
    return [value for key, value in scope["headers"] if key == name]


def test_it_hands_on_a_chunked_body_whole_with_its_length() -> None:
    chunks = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]
    app, sent = run([(b"transfer-encoding", b"chunked")], chunks)

    assert app.body == b'{"a":1}'
    assert header(app.scope, b"content-length") == [b"7"]
    assert header(app.scope, b"transfer-encoding") == []
    assert sent == []


def test_it_keeps_a_body_of_the_declared_length_as_it_is() -> None:
    headers = [(b"content-length", b"2"), (b"content-type", b"application/json")]
    app, _ = run(headers, [{"type": "http.request", "body": b"{}", "more_body": False}])

    assert app.body == b"{}"
    assert app.scope is not None
    assert app.scope["headers"] == headers


def test_it_stops_reading_a_chunked_body_one_byte_past_the_limit() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 8, "more_body": True}] * 5
    app, _ = run([(b"transfer-encoding", b"chunked")], chunks)

    # limit + 1 bytes: Django and the API see a body over the limit and answer 413.
    assert app.body == b"x" * 11
    assert header(app.scope, b"content-length") == [b"11"]


def test_it_reads_nothing_of_a_body_declared_over_the_limit() -> None:
    app, _ = run([(b"content-length", b"1000")], [])

    assert app.body == b""
    assert header(app.scope, b"content-length") == [b"1000"]


def test_it_answers_408_when_the_body_does_not_arrive_in_time() -> None:
    limits = BodyLimits(max_bytes=100, timeout_seconds=0.2)
    partial = [{"type": "http.request", "body": b"{", "more_body": True}]
    app, sent = run([(b"content-length", b"50")], partial, limits)

    assert app.scope is None  # Django never saw it
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    message = json.loads(sent[1]["body"])["errors"][0]["message"]
    assert message == "The request body did not arrive in time."


def test_it_drops_a_request_whose_client_left() -> None:
    gone = [{"type": "http.disconnect"}]
    app, sent = run([(b"content-length", b"5")], gone)

    assert app.scope is None
    assert sent == []


def test_it_serves_with_the_environment_s_settings() -> None:
    web = WebSettings.from_environ(
        {
            "TRADEWATCH_BIND": "0.0.0.0:8001",
            "WEB_CONCURRENCY": "3",
            "TRADEWATCH_HEADER_TIMEOUT_SECONDS": "2.5",
        }
    )
    options = granian_options(web)

    assert (options["address"], options["port"], options["workers"]) == ("0.0.0.0", 8001, 3)
    assert options["http1_settings"].header_read_timeout == 2500
    assert options["target"] == "monitoring_site.front:application"
    assert options["log_access"] is True


def test_it_leaves_a_request_without_a_body_as_it_is() -> None:
    app, _ = run([(b"accept", b"*/*")], [{"type": "http.request", "body": b"", "more_body": False}])

    assert app.body == b""
    assert app.scope is not None
    assert app.scope["headers"] == [(b"accept", b"*/*")]
