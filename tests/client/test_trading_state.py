"""The trading state in the client library: heard by a long poll and from every ingestion
answer, read without waiting, and failing closed (or open) when Tradewatch goes away."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.client.conftest import MakeClient
from tests.client.receiver import ReceiverProcess, free_port
from tradewatch_client import Client

# Short waits so a test sees the long poll wake and the state go stale quickly.
CONTROL = {"control_wait": 1.0, "control_stale_after": 2.0}


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_it_hears_a_halt_through_the_long_poll(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url, **CONTROL)
    assert client.trading_state() in ("unknown", "active")
    assert eventually(lambda: client.trading_state() == "active")
    assert client.may_open_positions() is True
    receiver.trading("halted")
    assert eventually(lambda: client.trading_state() == "halted")
    assert client.may_open_positions() is False
    receiver.trading("reduce_only")
    assert eventually(lambda: client.trading_state() == "reduce_only")
    assert client.may_open_positions() is False
    receiver.trading("active")
    assert eventually(lambda: client.may_open_positions())


def test_it_hears_the_state_from_ingestion_answers(
    receiver: ReceiverProcess, make_client: MakeClient
) -> None:
    client = make_client(receiver.url, control_wait=60, control_stale_after=120)
    assert eventually(lambda: client.trading_state() == "active")
    watch = client._watch
    assert watch is not None
    watch.stop()  # no more polls: only the ingestion answer can tell it now
    receiver.trading("halted")
    client.record("equity", 1.0)
    assert client.flush(5)
    assert client.trading_state() == "halted"


def test_with_fail_closed_it_stops_trading_when_tradewatch_is_gone(
    make_client: MakeClient,
) -> None:
    receiver = ReceiverProcess().start()
    try:
        client = make_client(receiver.url, **CONTROL)
        assert eventually(lambda: client.may_open_positions())
        receiver.kill()
        # Within the stale time it keeps the last state; after it, halted.
        assert client.may_open_positions() is True
        assert eventually(lambda: not client.may_open_positions(), timeout=10)
        assert client.trading_state() == "halted"
        receiver.start()
        assert eventually(lambda: client.may_open_positions(), timeout=15)
    finally:
        receiver.kill()


def test_with_fail_open_it_keeps_the_last_state(make_client: MakeClient) -> None:
    receiver = ReceiverProcess().start()
    try:
        client = make_client(receiver.url, control_fail="open", **CONTROL)
        assert eventually(lambda: client.trading_state() == "active")
        receiver.kill()
        time.sleep(CONTROL["control_stale_after"] + 0.5)
        assert client.may_open_positions() is True
        assert client.trading_state() == "active"
    finally:
        receiver.kill()


def test_never_heard_from_it_is_closed_by_default_and_open_when_asked(
    make_client: MakeClient,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert make_client(nowhere, **CONTROL).may_open_positions() is False
    assert make_client(nowhere, control_fail="open", **CONTROL).may_open_positions() is True


def test_a_disabled_client_lets_the_bot_trade() -> None:
    client = Client.from_config(None)
    assert client.trading_state() == "active"
    assert client.may_open_positions() is True


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"control_fail": "maybe"}, "control_fail"),
        ({"control_wait": 30, "control_stale_after": 10}, "control_stale_after"),
        ({"control_wait": 61, "control_stale_after": 100}, "control_wait"),
    ],
)
def test_it_refuses_bad_control_settings(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Client("http://127.0.0.1:1", "key", **options)  # type: ignore[arg-type]
