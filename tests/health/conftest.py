"""Fixtures for the health tests: real local servers to probe, checks built in a line."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from alerts.channels.signing import signing_secret_new
from alerts.models import Channel
from health import alerting
from health.models import HealthCheck


@pytest.fixture(autouse=True)
def _fresh_health_caches() -> Iterator[None]:
    alerting.forget_caches()
    yield
    alerting.forget_caches()


@dataclass
class Received:
    """A request the local server got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    """A real HTTP server on loopback whose answers a test sets per path."""

    port: int
    # path -> (status, body, delay in seconds)
    answers: dict[str, tuple[int, bytes, float]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    # Statuses to answer POSTs with, in turn (then 200).
    post_statuses: list[int] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    state = LocalServer(port=0)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            status, body, delay = state.answers.get(self.path, (404, b"not found", 0.0))
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the prober gave up waiting

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            state.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status = state.post_statuses.pop(0) if state.post_statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    """A real TCP port accepting connections (the kernel completes the handshake)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MakeCheck = Callable[..., HealthCheck]


@pytest.fixture
def make_check(db: None) -> MakeCheck:
    def make(kind: str = "tcp", config: dict[str, Any] | None = None, **fields: Any) -> HealthCheck:
        fields.setdefault("name", f"{kind}-{HealthCheck.objects.count()}")
        fields.setdefault("timeout", timedelta(seconds=2))
        fields.setdefault("failures_to_unhealthy", 1)
        fields.setdefault("successes_to_recover", 1)
        check = HealthCheck(kind=kind, config=config or {}, **fields)
        check.full_clean()
        check.save()
        return check

    return make


def recovery_channel(url: str, name: str = "pause alpha", **config: Any) -> tuple[Channel, str]:
    """A recovery action (a channel of kind recovery) and its signing secret."""
    secret = signing_secret_new()
    config.setdefault("command", "pause_trading")
    channel = Channel(
        name=name, kind=Channel.Kind.RECOVERY, config={"url": url, **config}, rate_limit=0
    )
    channel.secrets = {"signing_secret": secret}
    channel.full_clean()
    channel.save()
    return channel, secret
