"""The client delivers what the trading loop queues, in batches, over one connection."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.client.conftest import MakeClient
from tests.client.receiver import ReceiverProcess
from tests.processes import wait_until


def test_it_delivers_metrics_trades_heartbeats_and_events(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)

    client.record("drawdown_pct", 12.5, symbol="BTC/USDT")
    client.trade("t-1", "BTC/USDT", "buy", 0.1, 50_000, pnl=150.5, fee=0.1)
    client.heartbeat(status="ok", positions=2)
    client.event("circuit_breaker_tripped", "daily loss limit", loss=512.3)

    assert client.flush(timeout=10)
    state = receiver.state()
    [sample] = state["metrics"]
    assert sample["name"] == "drawdown_pct"
    assert sample["value"] == 12.5
    assert sample["labels"] == {"symbol": "BTC/USDT"}
    assert isinstance(sample["ts"], float)
    [trade] = state["trades"]
    assert {k: v for k, v in trade.items() if k != "ts"} == {
        "id": "t-1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": 0.1,
        "price": 50_000,
        "pnl": 150.5,
        "fee": 0.1,
    }
    [beat] = state["heartbeats"]
    assert beat["status"] == "ok"
    assert beat["info"] == {"positions": 2}
    [event] = state["events"]
    assert event["type"] == "circuit_breaker_tripped"
    assert event["message"] == "daily loss limit"
    assert event["context"] == {"loss": 512.3}
    assert all(r["authorized"] and r["idempotency_key"] for r in state["requests"])
    stats = client.stats()
    assert stats["queued"] == stats["sent"] == 4
    assert stats["pending"] == 0


def test_it_batches_up_to_batch_size(receiver: ReceiverProcess, make_client: MakeClient) -> None:
    client = make_client(receiver.url, batch_size=100)

    for i in range(250):
        client.record("equity", float(i))

    assert client.flush(timeout=10)
    sizes = [r["items"] for r in receiver.requests("/api/v1/metrics")]
    assert sum(sizes) == 250
    assert max(sizes) <= 100
    assert [s["value"] for s in receiver.metrics()] == list(range(250))


def test_it_reuses_one_connection_for_all_batches(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)

    for i in range(5):
        client.record("equity", float(i))
        client.trade(f"t-{i}", "ETH/USDT", "sell", 1, 3_000)
        assert client.flush(timeout=10)

    requests = receiver.requests()
    assert len(requests) >= 5
    assert len({r["client_port"] for r in requests}) == 1


def test_it_reconnects_when_the_server_closed_an_idle_connection(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.configure(drop_connections=True)
    client = make_client(receiver.url)

    for i in range(3):
        client.record("equity", float(i))
        assert client.flush(timeout=10)

    assert [s["value"] for s in receiver.metrics()] == [0, 1, 2]
    assert len({r["client_port"] for r in receiver.requests()}) == 3
    # A connection closed while idle is not a server failure: no retry, no error.
    assert client.stats()["retries"] == 0
    assert client.stats()["last_error"] is None


def test_it_sends_events_without_waiting_for_the_flush_interval(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url, flush_interval=60)
    client.record("equity", 1.0)
    assert client.flush(timeout=10)  # the sender now sleeps for a minute

    client.event("kill_switch_activated", "manual stop")

    assert wait_until(lambda: receiver.state()["events"], timeout=10)


def test_it_sends_only_the_newest_of_queued_heartbeats(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.script({"delay": 1.0})
    client = make_client(receiver.url)
    client.record("equity", 1.0)
    # The sender now waits on the slow answer; heartbeats pile up behind it.
    assert wait_until(lambda: receiver.requests(), timeout=10)

    for i in range(5):
        client.heartbeat(status="degraded" if i == 4 else "ok", tick=i)

    assert client.flush(timeout=10)
    assert [(b["status"], b["info"]) for b in receiver.state()["heartbeats"]] == [
        ("degraded", {"tick": 4})
    ]
    stats = client.stats()
    assert stats["coalesced"] == 4
    assert stats["sent"] == 2


def test_it_counts_trades_the_server_already_had(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)

    client.trade("t-1", "BTC/USDT", "buy", 0.1, 50_000)
    assert client.flush(timeout=10)
    client.trade("t-1", "BTC/USDT", "buy", 0.1, 50_000)
    client.trade(2, "BTC/USDT", "SELL", 0.1, 51_000, pnl=100)
    assert client.flush(timeout=10)

    assert [(t["id"], t["side"]) for t in receiver.state()["trades"]] == [
        ("t-1", "buy"),
        ("2", "sell"),
    ]
    assert client.stats()["sent"] == 3
    assert client.stats()["duplicates"] == 1


def test_it_sends_timestamps_as_unix_seconds(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url)
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    client.record("a", 1.0, ts=1_735_787_045)
    client.record("b", 1.0, ts=moment)
    client.record("c", 1.0, ts="2025-01-02T04:04:05+01:00")
    client.record("d", 1.0, ts="2025-01-02T03:04:05Z")
    client.record("naive", 1.0, ts="2025-01-02T03:04:05")  # which zone? dropped

    assert client.flush(timeout=10)
    assert {s["name"]: s["ts"] for s in receiver.metrics()} == {
        "a": moment.timestamp(),
        "b": moment.timestamp(),
        "c": moment.timestamp(),
        "d": moment.timestamp(),
    }
    assert client.stats()["dropped_invalid"] == 1
