"""The pure parts: drop accounting of the queue and the wire format of items."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tradewatch_client.buffer import Buffer
from tradewatch_client.config import ClientConfig
from tradewatch_client.payloads import (
    ENDPOINTS,
    EVENT,
    METRIC,
    TRADE,
    InvalidItem,
    encode,
    to_payload,
)


def test_it_counts_items_pushed_out_of_a_full_queue() -> None:
    buffer = Buffer(3)
    for i in range(10):
        buffer.put((METRIC, 0.0, "x", float(i), {}))

    assert buffer.dropped() == 7
    assert [buffer.take()[3] for _ in range(3)] == [7.0, 8.0, 9.0]
    buffer.put((METRIC, 0.0, "x", 10.0, {}))
    assert buffer.dropped() == 7
    assert buffer.appended() == 11
    assert buffer.taken() == 3
    buffer.take()
    with pytest.raises(IndexError):
        buffer.take()
    assert buffer.taken() == 4  # a take from an empty queue is not counted


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ((METRIC, 0.0, "x", math.nan, {}), "value"),
        ((METRIC, 0.0, "x", "12.5", {}), "value"),
        ((METRIC, 0.0, "", 1.0, {}), "name"),
        ((METRIC, math.inf, "x", 1.0, {}), "ts"),
        ((METRIC, True, "x", 1.0, {}), "ts"),
        ((METRIC, "2025-01-02 03:04", "x", 1.0, {}), "ts"),
        ((TRADE, 0.0, "t", "BTC/USDT", "long", 1.0, 1.0, None, None), "side"),
        ((TRADE, 0.0, "t", "BTC/USDT", "buy", 1.0, 1.0, math.nan, None), "pnl"),
        ((TRADE, 0.0, 1.5, "BTC/USDT", "buy", 1.0, 1.0, None, None), "id"),
        # beyond the server's bound on trade values (1e15): refused alone, not its batch
        ((TRADE, 0.0, "t", "BTC/USDT", "sell", 1.0, 1.0, 1.7e308, None), "pnl"),
        ((TRADE, 0.0, "t", "BTC/USDT", "sell", 1.0, 1.0, None, -2e15), "fee"),
        ((TRADE, 0.0, "t", "BTC/USDT", "buy", 1e8, 1e8, None, None), "quantity"),
        ((EVENT, 0.0, "error", "", ["not", "a", "mapping"]), "context"),
    ],
)
def test_it_refuses_what_the_server_would_refuse(item: tuple[object, ...], field: str) -> None:
    with pytest.raises(InvalidItem) as caught:
        to_payload(item)

    assert caught.value.field == field


def test_it_encodes_a_batch_under_its_endpoints_key() -> None:
    moment = datetime(2025, 1, 2, tzinfo=UTC)
    payloads = [to_payload((EVENT, moment, "artifact_updated", "", {"at": moment}))]

    body = encode(ENDPOINTS[EVENT], payloads)

    assert body == (
        b'{"events":[{"type":"artifact_updated","message":"",'
        b'"context":{"at":"2025-01-02 00:00:00+00:00"},"ts":1735776000.0}]}'
    )
    with pytest.raises(ValueError, match="Out of range float"):
        encode(ENDPOINTS[EVENT], [to_payload((EVENT, 0.0, "e", "", {"x": math.nan}))])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"url": "ftp://example.com"}, "url"),
        ({"api_key": ""}, "api_key"),
        ({"batch_size": 10_001}, "batch_size"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"backoff_max": math.nan}, "backoff_max"),
    ],
)
def test_it_names_the_field_of_a_bad_setting(options: dict[str, object], field: str) -> None:
    settings: dict[str, object] = {"url": "http://127.0.0.1:8000", "api_key": "k", **options}

    with pytest.raises(ValueError, match=f"^{field}:"):
        ClientConfig(**settings)  # type: ignore[arg-type]
