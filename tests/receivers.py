"""Real HTTP receivers on loopback for delivery tests: they record and answer as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    """How the receiver answers one request: status, headers, and a delay first."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver:
    """A threading HTTP server recording every request; `script` answers them in order.

    Once the script runs out, `default` answers. `hang` makes it accept and never answer.
    """

    def __init__(self, default: Answer | None = None, *, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.script: list[Answer] = []
        self.default = default or Answer()
        self.hang = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                        )
                    )
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                if receiver.hang.is_set():
                    receiver._stop.wait(60)
                    return
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [request.body for request in self.requests]


@contextmanager
def receiver(default: Answer | None = None) -> Iterator[Receiver]:
    running = Receiver(default).start()
    try:
        yield running
    finally:
        running.close()
