"""Fixtures for the channel tests: real receivers on loopback."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from pytest_django.fixtures import Settings

from tests.alerts.channels.receivers import Inbox, Receiver, smtp_controller


@pytest.fixture
def make_receiver() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def make() -> Receiver:
        receiver = Receiver().start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(make_receiver: Callable[[], Receiver]) -> Receiver:
    return make_receiver()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    inbox = Inbox()
    controller = smtp_controller(inbox)
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture
def nothing_allowed(settings: Settings) -> None:
    """No network is let through: loopback is refused like any private address."""
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = []


@pytest.fixture
def short_timeout(settings: Settings) -> float:
    settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS = 0.5
    return 0.5


class Listener:
    """A bare TCP listener on 127.0.0.1 that only counts the connections that reached it.

    Stronger than a receiver's request log: a channel that connected and gave up before
    sending anything (a port scan) still shows up in the kernel's accept queue.
    """

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.socket.setblocking(False)
        self.port = int(self.socket.getsockname()[1])

    def connections(self) -> int:
        """How many connections arrived (completed handshakes), taking them off the queue."""
        count = 0
        while True:
            try:
                accepted, _ = self.socket.accept()
            except BlockingIOError:
                return count
            accepted.close()
            count += 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.socket.close()
