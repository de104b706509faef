"""The trading loop never waits for, nor crashes because of, the monitoring."""

from __future__ import annotations

import logging
import math
import os
import threading
from decimal import Decimal

import pytest

from tests.client.conftest import MakeClient
from tests.client.receiver import ReceiverProcess, free_port
from tests.processes import wait_until


def test_it_keeps_the_trading_loop_running_while_the_server_is_down_and_delivers_later(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)
    client.record("before", 1.0)
    assert client.flush(timeout=10)
    assert len(receiver.metrics("before")) == 1

    receiver.kill()
    for i in range(2_000):
        client.record("during", float(i), symbol="BTC/USDT")
    # The sender keeps failing in the background...
    assert wait_until(lambda: client.stats()["retries"] >= 3, timeout=10)
    # ...and the loop goes on regardless.
    for i in range(2_000, 3_000):
        client.record("during", float(i), symbol="BTC/USDT")
    assert not client.flush(timeout=0.2)
    stats = client.stats()
    assert stats["pending"] == 3_000
    assert "ConnectionRefusedError" in (stats["last_error"] or "")

    receiver.start()  # same port, empty memory

    assert client.flush(timeout=20)
    assert [s["value"] for s in receiver.metrics("during")] == list(range(3_000))
    assert client.stats()["sent"] == 3_001
    assert client.stats()["dropped_failed"] == 0


def test_it_drops_the_oldest_items_when_the_queue_is_full(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.script({"delay": 1.0})
    client = make_client(receiver.url, max_queue=100)
    client.record("first", 0.0)
    # The sender is now waiting on the slow answer and takes nothing from the queue.
    assert wait_until(lambda: receiver.requests(), timeout=10)

    for i in range(250):
        client.record("equity", float(i))

    assert client.stats()["dropped_queue_full"] == 150
    assert client.flush(timeout=10)
    assert [s["value"] for s in receiver.metrics("equity")] == list(range(150, 250))
    stats = client.stats()
    assert stats["queued"] == 251
    assert stats["sent"] == 101
    assert stats["dropped_queue_full"] == 150


def test_it_never_raises_into_the_caller(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)

    client.record(None, "twelve")  # type: ignore[arg-type]
    client.record("", 1.0)
    client.record("equity", object())  # type: ignore[arg-type]
    client.record("equity", 1.0, ts="yesterday")
    client.trade("t-1", "BTC/USDT", "hold", 1, 1)
    client.trade(None, None, None, None, None)  # type: ignore[arg-type]
    client.event(42, object())  # type: ignore[arg-type]
    client.heartbeat(status=None)  # type: ignore[arg-type]
    client.record("ok", Decimal("1.5"), timeframe=5)  # coerced, not refused

    assert client.flush(timeout=10)
    [sample] = receiver.metrics()
    assert sample == {**sample, "name": "ok", "value": 1.5, "labels": {"timeframe": "5"}}
    stats = client.stats()
    assert stats["dropped_invalid"] == 8
    assert stats["sent"] == 1
    assert stats["internal_errors"] == 0


def test_it_drops_nan_and_infinite_values_on_its_own(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)

    client.record("equity", math.nan)
    client.record("equity", math.inf)
    client.trade("t-1", "BTC/USDT", "buy", 1.0, -math.inf)
    client.event("error", "bad context", ratio=math.nan)
    client.record("equity", 1.0)

    assert client.flush(timeout=10)
    # The server would have refused the whole batch for one NaN; only the NaN is lost.
    assert [s["value"] for s in receiver.metrics()] == [1.0]
    assert client.stats()["dropped_invalid"] == 4
    assert client.stats()["dropped_rejected"] == 0


def test_it_logs_a_down_server_at_most_once_per_interval(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradewatch_client")
    client = make_client(f"http://127.0.0.1:{free_port()}", backoff_max=0.02)

    client.record("equity", 1.0)

    assert wait_until(lambda: client.stats()["retries"] >= 20, timeout=10)
    warnings = [r for r in caplog.records if r.name == "tradewatch_client"]
    assert len(warnings) == 1
    assert "Connection refused" in warnings[0].message


def test_it_is_thread_safe(receiver: ReceiverProcess, make_client: MakeClient) -> None:
    client = make_client(receiver.url)

    def trading_loop(number: int) -> None:
        for i in range(2_000):
            client.record("tick", float(i), thread=number)

    threads = [threading.Thread(target=trading_loop, args=(t,)) for t in range(8)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert client.flush(timeout=20)
    samples = receiver.metrics()
    assert len(samples) == 16_000
    assert {(s["labels"]["thread"], s["value"]) for s in samples} == {
        (str(t), float(i)) for t in range(8) for i in range(2_000)
    }
    stats = client.stats()
    assert stats["queued"] == stats["sent"] == 16_000


def test_it_ignores_and_counts_calls_after_close(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)
    client.record("equity", 1.0)
    assert client.close(timeout=10)

    client.record("equity", 2.0)
    client.event("error", "late")
    assert client.close(timeout=10)  # closing twice is harmless

    assert [s["value"] for s in receiver.metrics()] == [1.0]
    assert client.stats()["dropped_closed"] == 2


def test_it_stops_waiting_at_close_when_the_server_is_down(make_client: MakeClient) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}")
    for i in range(10):
        client.record("equity", float(i))

    assert not client.close(timeout=0.3)

    assert wait_until(lambda: client.stats()["dropped_failed"] == 10, timeout=10)
    assert client.stats()["pending"] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_it_starts_a_new_sender_in_a_forked_child(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.script({"delay": 1.0})
    client = make_client(receiver.url)
    client.record("parent", 0.0)
    assert wait_until(lambda: receiver.requests(), timeout=10)
    for i in range(1, 10):
        client.record("parent", float(i))  # still queued when the process forks

    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            client.record("child", 1.0)
            delivered = client.flush(timeout=10)
            stats = client.stats()
            code = 0 if delivered and stats["queued"] == stats["sent"] == 1 else 2
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.flush(timeout=10)
    # The parent's queue was sent once, by the parent; the child sent only its own.
    assert [s["value"] for s in receiver.metrics("parent")] == [float(i) for i in range(10)]
    assert len(receiver.metrics("child")) == 1
