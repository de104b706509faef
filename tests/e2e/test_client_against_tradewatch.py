"""The client library against a live Tradewatch web process, stopped and started again."""

from __future__ import annotations

import time
from typing import Any

import pytest

from metrics.models import Event, MetricSample, Source, SourceHeartbeat, Trade
from metrics.services import source_create
from tests.processes import free_port, process_environment, start_web_server, stop, wait_until
from tradewatch_client import Client

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAST: dict[str, Any] = {
    "flush_interval": 0.05,
    "backoff_initial": 0.05,
    "backoff_max": 0.2,
    "timeout": 2.0,
}


def test_it_delivers_everything_and_keeps_the_loop_unaffected_while_tradewatch_is_down() -> None:
    source, key = source_create(name="live-bot")
    port = free_port()
    env = process_environment()
    server = start_web_server(env, port)
    client = Client(f"http://127.0.0.1:{port}", key, **FAST)
    try:
        client.heartbeat(status="ok", version="1.0")
        client.record("equity", 1000.0)
        client.record("latency_ms", 12.5, exchange="binance")
        client.trade("t-1", "BTC/USDT", "buy", quantity=0.1, price=50_000, fee=0.1)
        client.event("circuit_breaker_tripped", "loss limit", loss=512.3)
        assert client.flush(timeout=20)
        assert SourceHeartbeat.objects.get(source=source).info == {"version": "1.0"}
        assert Trade.objects.get(source=source).price == 50_000
        assert Event.objects.get(source=source).context == {"loss": 512.3}
        assert MetricSample.objects.filter(series__source=source).count() == 2

        stop(server)
        # The trading loop goes on while Tradewatch is away: nothing raises or blocks.
        started = time.monotonic()
        first_tick = time.time()
        for i in range(2000):
            # One tick a millisecond: samples of one series at the same instant replace
            # each other, so a loop this fast gives its own timestamps.
            client.record("loop_iteration", float(i), ts=first_tick + i / 1000)
        loop_seconds = time.monotonic() - started
        assert loop_seconds < 5  # generous: 2,000 queue appends, not 2,000 requests
        assert not client.flush(timeout=0.5)  # the server is down: not everything went out
        assert wait_until(lambda: client.stats()["retries"] > 0, 10)

        server = start_web_server(env, port)
        assert client.flush(timeout=30)
        stats = client.stats()
        assert stats["dropped_queue_full"] == 0
        assert stats["dropped_failed"] == 0
        assert (
            MetricSample.objects.filter(
                series__source=source, series__name="loop_iteration"
            ).count()
            == 2000
        )
    finally:
        client.close(timeout=1)
        stop(server)
    assert Source.objects.get(pk=source.pk).enabled
