"""What the client does with each answer of the contract: retry, wait, split or drop."""

from __future__ import annotations

import itertools
import logging

import pytest

from tests.client.conftest import MakeClient
from tests.client.receiver import ReceiverProcess


def test_it_retries_server_errors_with_the_same_idempotency_key(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.script({"status": 500}, {"status": 503})
    client = make_client(receiver.url)

    client.record("equity", 1.0)

    assert client.flush(timeout=10)
    requests = receiver.requests()
    assert len(requests) == 3
    assert len({r["idempotency_key"] for r in requests}) == 1
    assert len(receiver.metrics()) == 1
    stats = client.stats()
    assert stats["retries"] == 2
    assert stats["sent"] == 1
    assert "HTTP 503" in (stats["last_error"] or "")


def test_it_does_not_store_a_batch_twice_when_the_answer_is_lost(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    # The server stores the batch but its answer never arrives; the client times out.
    receiver.script({"hang": 1.0})
    client = make_client(receiver.url, timeout=0.3)

    client.record("equity", 1.0)

    assert client.flush(timeout=10)
    requests = receiver.requests()
    assert len(requests) == 2
    assert requests[0]["idempotency_key"] == requests[1]["idempotency_key"]
    assert len(receiver.metrics()) == 1
    assert client.stats()["retries"] == 1


def test_it_waits_as_long_as_retry_after_says(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.script({"status": 429, "retry_after": 1})
    client = make_client(receiver.url)

    client.record("equity", 1.0)

    assert client.flush(timeout=10)
    first, second = receiver.requests()
    assert second["at"] - first["at"] >= 0.9  # not the 20 ms backoff of these tests
    assert first["idempotency_key"] == second["idempotency_key"]
    assert len(receiver.metrics()) == 1


def test_it_splits_a_batch_the_server_finds_too_large(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.configure(max_batch=10)
    client = make_client(receiver.url, batch_size=40, flush_interval=0.5)

    for i in range(40):
        client.record("equity", float(i))

    assert client.flush(timeout=10)
    assert [s["value"] for s in receiver.metrics()] == list(range(40))
    requests = receiver.requests()
    assert max(r["items"] for r in requests) > 10  # the first try was too large
    # Each half is a new batch with a key of its own (a reused key would get the
    # first half's stored answer).
    accepted = [r for r in requests if r["items"] <= 10]
    assert len({r["idempotency_key"] for r in accepted}) == len(accepted)
    assert client.stats()["sent"] == 40


def test_it_drops_a_batch_the_server_rejects_and_goes_on(
    receiver: ReceiverProcess, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script({"status": 400})
    client = make_client(receiver.url)

    for i in range(5):
        client.record("equity", float(i))
    assert client.flush(timeout=10)
    for i in range(3):
        client.record("pnl", float(i))
    assert client.flush(timeout=10)

    assert len(receiver.requests()) == 2  # the rejected batch was not sent again
    assert [s["name"] for s in receiver.metrics()] == ["pnl"] * 3
    stats = client.stats()
    assert stats["dropped_rejected"] == 5
    assert stats["sent"] == 3
    assert "HTTP 400" in (stats["last_error"] or "")
    assert any(r.levelno == logging.ERROR and "rejected" in r.message for r in caplog.records)


def test_it_drops_data_and_logs_loudly_when_the_api_key_is_refused(
    receiver: ReceiverProcess, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(receiver.url, api_key="not-the-key")

    for i in range(3):
        client.record("equity", float(i))

    assert client.flush(timeout=10)  # settled: retrying cannot make the key right
    assert len(receiver.requests()) == 1
    assert receiver.metrics() == []
    assert client.stats()["dropped_rejected"] == 3
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "TRADEWATCH_API_KEY" in line.message


def test_it_gives_up_on_a_batch_the_server_keeps_failing(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    receiver.script({"status": 500}, {"status": 500}, {"status": 500})
    client = make_client(receiver.url, max_server_error_attempts=3)

    client.record("poison", 1.0)
    assert client.flush(timeout=10)
    client.record("equity", 2.0)
    assert client.flush(timeout=10)

    assert [s["name"] for s in receiver.metrics()] == ["equity"]
    stats = client.stats()
    assert stats["dropped_failed"] == 1
    assert stats["sent"] == 1


def test_it_waits_out_a_503_with_retry_after_without_giving_the_batch_up(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    # Tradewatch answers 503 + Retry-After while its database is away: more of them
    # than the server errors a batch may take before it is given up.
    receiver.script(*[{"status": 503, "retry_after": 0.3}] * 3)
    client = make_client(receiver.url, max_server_error_attempts=2)

    client.record("equity", 1.0)

    assert client.flush(timeout=10)
    requests = receiver.requests()
    assert len(requests) == 4
    assert len({r["idempotency_key"] for r in requests}) == 1
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(requests)]
    assert min(gaps) >= 0.25  # as long as Retry-After says, not the 20 ms backoff
    assert len(receiver.metrics()) == 1
    stats = client.stats()
    assert (stats["sent"], stats["dropped_failed"]) == (1, 0)
