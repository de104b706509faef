"""Fixtures for the channel tests: real receivers on loopback."""

from __future__ import annotations

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
