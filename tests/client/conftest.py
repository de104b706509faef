"""Fixtures for the client library's tests: a real receiver process and fast clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.client.receiver import ReceiverProcess, running_receiver
from tradewatch_client import Client

# Short waits everywhere, so retries and flushes happen within a test's patience.
FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "backoff_initial": 0.02,
    "backoff_max": 0.1,
    "timeout": 2.0,
    "exit_timeout": 1.0,
}

MakeClient = Callable[..., Client]


@pytest.fixture
def receiver() -> Iterator[ReceiverProcess]:
    """A receiver process of this test's own, on a free loopback port."""
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Build clients with fast settings; each is closed (without waiting) after the test."""
    clients: list[Client] = []

    def make(url: str, api_key: str = "test-key", **options: Any) -> Client:
        client = Client(url, api_key, **{**FAST, **options})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=0)
