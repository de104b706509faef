"""The live event stream through the real web server (Granian and its ASGI front) with
real HTTP clients: 200 at once each get an alert change; a client that reconnects with
`Last-Event-ID` gets what it missed, in order, or a `reset`; who may open it; health,
trading state and latest values; keepalives; the per-process cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import connections
from rest_framework.authtoken.models import Token

from alerts.alert_actions import alert_acknowledge, alert_resolve
from alerts.control import Target, trading_control_by_person
from alerts.models import Alert, Rule
from bench.sse import Listener, SseEvent, is_event
from health.checks import CheckResult
from health.models import HealthCheck
from health.runner import check_record
from health.scoring import Status
from metrics.models import Source
from metrics.services import source_create
from tests.factories import make_alert, make_user
from tests.processes import free_port, process_environment, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

T = TypeVar("T")
CLIENTS = 200
WAIT = 30.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own (a loop another test left in this thread, the
    browser tests' Playwright, would refuse a second one here)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[str]:
    """One web process for the module: keepalives every second, values read five times a
    second, and room for exactly `CLIENTS` streams."""
    port = free_port()
    env = process_environment(
        TRADEWATCH_STREAM_KEEPALIVE_SECONDS="1",
        TRADEWATCH_STREAM_METRICS_SECONDS="0.2",
        TRADEWATCH_STREAM_MAX_CLIENTS=str(CLIENTS),
    )
    with web_server(env, port):
        yield f"http://127.0.0.1:{port}"


def token_of(user: User) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


def viewer() -> dict[str, str]:
    return token_of(make_user("vera", "alerts.view_alert", "metrics.view_metricseries"))


def firing_alert(name: str = "stream-bot") -> Alert:
    source, _ = source_create(name=name)
    rule = Rule.objects.create(name=f"Drawdown {name}", metric="drawdown_pct")
    return make_alert(rule, source)


def operator() -> User:
    return make_user("otto", "alerts.view_alert", "alerts.change_alert")


async def opened(
    base: str, headers: dict[str, str], count: int = 1, path: str = "/api/v1/stream"
) -> tuple[httpx.AsyncClient, list[Listener], list[asyncio.Task[None]]]:
    """`count` streams, each answered (ready, or a refusal)."""
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(WAIT, read=None),
        limits=httpx.Limits(max_connections=count + 10, max_keepalive_connections=0),
    )
    listeners = [Listener(f"{base}{path}", dict(headers)) for _ in range(count)]
    tasks = [asyncio.create_task(listener.run(client)) for listener in listeners]
    answered = await asyncio.gather(*(listener.answered(WAIT) for listener in listeners))
    assert all(answered), "some streams were never answered"
    return client, listeners, tasks


async def closed(client: httpx.AsyncClient, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


async def in_thread(call: Callable[[], T]) -> T:
    """A database call of the test, off the event loop, on a thread that keeps no
    connection afterwards (the test database is dropped at the end of the run)."""

    def closing() -> T:
        try:
            return call()
        finally:
            connections.close_all()

    return await asyncio.get_running_loop().run_in_executor(None, closing)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_two_hundred_clients_each_get_an_alert_change_and_one_more_is_told_to_wait(
    server: str,
) -> None:
    headers = viewer()
    alert = firing_alert()
    person = operator()

    async def scenario() -> tuple[list[SseEvent | None], float, Listener]:
        client, listeners, tasks = await opened(server, headers, CLIENTS)
        try:
            assert [listener.status for listener in listeners] == [200] * CLIENTS
            extra_client, (extra,), extra_tasks = await opened(server, headers)
            await closed(extra_client, extra_tasks)
            started = time.perf_counter()
            await in_thread(lambda: alert_acknowledge(alert_id=alert.pk, by=person, note="mine"))
            got = await asyncio.gather(
                *(
                    listener.wait_for(is_event("alert", alert_id=alert.pk), WAIT)
                    for listener in listeners
                )
            )
            return got, started, extra
        finally:
            await closed(client, tasks)

    got, started, extra = run(scenario())
    received = [event for event in got if event is not None]
    assert len(received) == CLIENTS, f"{CLIENTS - len(received)} clients got no event"
    for event in received:
        data = event.json()
        assert (data["change"], data["state"], data["actor"]) == ("acknowledged", "firing", "otto")
        assert data["source"]["name"] == "stream-bot"
        assert event.id is not None
    latencies = [(event.at - started) * 1000 for event in received]
    # Measured, not asserted (the benchmark, bench/stream.py, reports it): tests do not
    # assert timings.
    print(f"stream: {CLIENTS} clients, p50 {percentile(latencies, 0.5):.1f} ms, "
          f"p99 {percentile(latencies, 0.99):.1f} ms")  # fmt: skip

    assert extra.status == 503
    assert extra.response_headers["retry-after"] == "5"
    assert "TRADEWATCH_STREAM_MAX_CLIENTS" in extra.body.decode()


def test_a_client_that_reconnects_gets_what_it_missed_in_order_or_a_reset(server: str) -> None:
    headers = viewer()
    first, second, third = (firing_alert(f"bot-{n}") for n in range(3))
    person = operator()

    async def scenario() -> tuple[list[SseEvent], Listener, Listener]:
        client, (listener,), tasks = await opened(server, headers)
        await in_thread(lambda: alert_acknowledge(alert_id=first.pk, by=person))
        assert await listener.wait_for(is_event("alert", alert_id=first.pk), WAIT)
        await closed(client, tasks)
        last_id = listener.last_event_id
        assert last_id is not None

        # Away: three changes happen.
        await in_thread(lambda: alert_acknowledge(alert_id=second.pk, by=person))
        await in_thread(lambda: alert_resolve(alert_id=third.pk, by=person))
        await in_thread(lambda: alert_resolve(alert_id=first.pk, by=person))

        resumed_client, (resumed,), resumed_tasks = await opened(
            server, {**headers, "Last-Event-ID": last_id}
        )
        assert await resumed.wait_for(is_event("alert", alert_id=first.pk, change="resolved"), 5)
        await closed(resumed_client, resumed_tasks)

        stale_client, (stale,), stale_tasks = await opened(
            server, {**headers, "Last-Event-ID": "1-0"}
        )
        assert await stale.wait_for(lambda e: e.event == "reset", 5)
        await closed(stale_client, stale_tasks)
        return resumed.events, stale, resumed

    events, stale, resumed = run(scenario())
    kinds = [event.event for event in events]
    assert kinds[0] == "ready"
    replayed = [event.json() for event in events if event.event == "alert"]
    assert [(e["alert_id"], e["change"]) for e in replayed[:3]] == [
        (second.pk, "acknowledged"),
        (third.pk, "resolved"),
        (first.pk, "resolved"),
    ]
    ids = [event.id for event in events if event.event == "alert"]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, str(i).split("-"))))
    assert [event.event for event in stale.events[:2]] == ["ready", "reset"]
    assert "no longer kept" in stale.events[1].json()["reason"]
    assert resumed.response_headers["content-type"].startswith("text/event-stream")


def test_only_people_with_the_permission_to_view_alerts_may_open_it(server: str) -> None:
    _, key = source_create(name="keyed-bot")
    nobody = token_of(make_user("nemo"))
    no_metrics = token_of(make_user("alice", "alerts.view_alert"))

    def status(headers: dict[str, str], query: str = "") -> tuple[int, str]:
        answer = httpx.get(f"{server}/api/v1/stream{query}", headers=headers, timeout=WAIT)
        return answer.status_code, answer.json()["errors"][0]["message"]

    assert status({})[0] == 401
    code, message = status({"Authorization": f"Api-Key {key}"})
    assert (code, "operator endpoints" in message or "for people" in message) == (401, True)
    code, message = status(nobody)
    assert (code, "alerts.view_alert" in message) == (403, True)
    code, message = status(no_metrics, "?metrics=equity")
    assert (code, "metrics.view_metricseries" in message) == (403, True)
    code, message = status(viewer(), "?metrics=equity&source=ghost")
    assert (code, "ghost" in message) == (400, True)
    # A forged front mark changes nothing: the front drops it.
    assert status({"X-Tradewatch-Front-Streams": "1"})[0] == 401


def test_it_sends_health_and_trading_state_changes_and_keepalives(server: str) -> None:
    headers = viewer()
    source, _ = source_create(name="watched-bot")
    other, _ = source_create(name="unwatched-bot")
    check = HealthCheck.objects.create(
        name="watched heartbeat", kind=HealthCheck.Kind.HEARTBEAT, source=source,
        failures_to_unhealthy=1,
    )  # fmt: skip

    async def scenario() -> Listener:
        client, (listener,), tasks = await opened(
            server, headers, path=f"/api/v1/stream?source={source.name}"
        )
        try:
            await in_thread(lambda: halt(other))
            await in_thread(lambda: halt(source))
            await in_thread(
                lambda: check_record(
                    check=check, result=CheckResult.failed(Status.CRITICAL, "no heartbeat")
                )
            )
            assert await listener.wait_for(is_event("health", check_id=check.pk), WAIT)
            assert await listener.wait_for(lambda e: e.event == "comment", 5)
            return listener
        finally:
            await closed(client, tasks)

    listener = run(scenario())
    trading = [event.json() for event in listener.events if event.event == "trading_state"]
    # Only the source asked for.
    assert [(e["source"]["name"], e["state"], e["previous_state"]) for e in trading] == [
        ("watched-bot", "halted", "active")
    ]
    assert trading[0]["reason"] == "stream test"
    health = next(e.json() for e in listener.events if e.event == "health")
    assert (health["status"], health["previous_status"], health["source_id"]) == (
        "critical", "unknown", source.pk,
    )  # fmt: skip
    assert any(e.event == "comment" and e.data == "keepalive" for e in listener.events)


def halt(source: Source) -> None:
    trading_control_by_person(
        target=Target.of_source(source), state="halted", by=None, note="stream test", via="test"
    )


def test_it_sends_the_latest_values_asked_for_and_then_their_changes(server: str) -> None:
    headers = viewer()
    source, key = source_create(name="equity-bot")
    bot = {"Authorization": f"Api-Key {key}"}
    equity = {"samples": [{"name": "equity", "value": 1000.0}, {"name": "cpu", "value": 5}]}
    assert httpx.post(f"{server}/api/v1/metrics", json=equity, headers=bot).status_code == 202

    async def scenario() -> Listener:
        client, (listener,), tasks = await opened(
            server, headers, path="/api/v1/stream?metrics=equity&source=equity-bot"
        )
        try:
            more = {"samples": [{"name": "equity", "value": 1010.5}]}
            answer = await client.post(f"{server}/api/v1/metrics", json=more, headers=bot)
            assert answer.status_code == 202

            def new_equity(event: SseEvent) -> bool:
                if event.event != "metrics":
                    return False
                sources = event.json()["sources"]
                return any(m["value"] == 1010.5 for s in sources for m in s["metrics"])

            assert await listener.wait_for(new_equity, WAIT)
            return listener
        finally:
            await closed(client, tasks)

    listener = run(scenario())
    first, later = (e.json() for e in listener.events if e.event == "metrics")
    assert [(s["name"], [(m["name"], m["value"]) for m in s["metrics"]]) for s in
            first["sources"]] == [("equity-bot", [("equity", 1000.0)])]  # fmt: skip
    assert [(s["name"], [m["value"] for m in s["metrics"]]) for s in later["sources"]] == [
        ("equity-bot", [1010.5])
    ]
    ready = listener.events[0].json()
    assert (ready["metrics"], ready["source_ids"]) == (["equity"], [source.pk])
