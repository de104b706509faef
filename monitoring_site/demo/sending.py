"""The demo's HTTP side: each simulated system sends through the bundled client library
(`tradewatch_client`) with its own API key, exactly as a real bot does; plus the two
questions asked of the server before anything is sent (is it up, does it know our keys).

No Django here: only the server's HTTP API is spoken to.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tradewatch_client import Client

from .scenario import Event, Fill, Heartbeat, Item, Metric


def server_answers(url: str, timeout: float = 3.0) -> bool:
    """Whether Tradewatch's liveness probe (`/healthz`) answers 200 at `url`."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (OSError, ValueError):
        return False


def server_awaited(url: str, wait: float, say: Callable[[str], object]) -> bool:
    """Whether Tradewatch answers at `url` within `wait` seconds: started in a second
    terminal right after `make run`, the demo may come before the web server is up."""
    if server_answers(url):
        return True
    deadline = time.monotonic() + wait
    if wait > 0:
        say(f"Waiting up to {wait:g} s for Tradewatch to answer at {url} ...")
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if server_answers(url, timeout=1.0):
            return True
    return False


def key_source(url: str, key: str, timeout: float = 5.0) -> str | None:
    """The source the server says `key` belongs to (`/api/v1/whoami`); None if it does
    not know the key. Any other failure raises OSError."""
    request = urllib.request.Request(  # noqa: S310 (the operator's own server)
        f"{url}/api/v1/whoami", headers={"Authorization": f"Api-Key {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return str(json.loads(answer.read())["source"])
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return None
        raise


@dataclass(frozen=True)
class Problem:
    """Something a system's client could not deliver (the server refused it, or failed)."""

    source: str
    error: str


class Senders:
    """One client per simulated system; items go out when `flush` is called."""

    def __init__(self, url: str, keys: Mapping[str, str]) -> None:
        # Short batching pause: the demo flushes after every tick anyway.
        self._clients = {
            name: Client(url, key, flush_interval=0.05, exit_timeout=2.0)
            for name, key in keys.items()
        }
        self._reported: dict[str, tuple[int, str | None]] = {}

    def send(self, source: str, items: Iterable[Item], start: float) -> int:
        """Queue `items` of `source`; history items (`Metric.at`) are stamped `start` +
        `at` (UNIX seconds), the others now. Return how many were queued."""
        client = self._clients[source]
        count = 0
        for item in items:
            count += 1
            if isinstance(item, Metric):
                ts = None if item.at is None else start + item.at
                client.record(item.name, item.value, ts)
            elif isinstance(item, Fill):
                client.trade(
                    item.id, item.symbol, item.side, item.quantity, item.price, item.pnl, item.fee
                )
            elif isinstance(item, Heartbeat):
                client.heartbeat(item.status)
            elif isinstance(item, Event):
                client.event(item.type, item.message, **dict(item.context))
        return count

    def flush(self, timeout: float) -> bool:
        """Wait until every client delivered what it has queued (False: timed out)."""
        return all(client.flush(timeout) for client in self._clients.values())

    def problems(self) -> list[Problem]:
        """Delivery problems since the last call, one per source at most."""
        found = []
        for name, client in self._clients.items():
            stats = client.stats()
            lost = stats["dropped_rejected"] + stats["dropped_failed"] + stats["dropped_invalid"]
            state = (lost, stats["last_error"])
            if state != self._reported.get(name, (0, None)) and stats["last_error"]:
                found.append(Problem(name, stats["last_error"]))
            self._reported[name] = state
        return found

    def sent(self) -> int:
        """Items the server acknowledged, all systems together."""
        return sum(client.stats()["sent"] for client in self._clients.values())

    def close(self, timeout: float = 2.0) -> None:
        for client in self._clients.values():
            client.close(timeout)
