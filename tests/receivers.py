"""Real receivers on loopback for the delivery and channel tests: HTTP and SMTP.

The HTTP receiver records every request (method, path, headers, body, arrival time) and
answers from a script: a status, headers such as Retry-After, a delay, an answer
trickled a byte at a time, or no answer at all. The SMTP inbox keeps every message and
can refuse recipients.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.processes import free_port

# How long a request left without an answer waits, at most, for the receiver to stop.
_HANG_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Accept the request and never answer (until the receiver stops).
    hang: bool = False
    # Seconds between the bytes of the answer's head, to outlast a per-read timeout.
    trickle: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP server on 127.0.0.1 recording requests and answering by script.

    `script` answers the next requests in order (`answer` adds to it); once it runs out,
    `default` answers. While `hang` is set, every request is accepted and left without
    an answer. `port` 0 takes a free one; `tls` serves HTTPS.
    """

    def __init__(
        self, default: Answer | None = None, *, port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.requests: list[Received] = []
        self.script: list[Answer] = []
        self.default = default or Answer()
        self.hang = threading.Event()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; then with `default`."""
        with self._lock:
            self.script.extend(answers)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def record(self, request: Received) -> Answer:
        """Keep `request`; return how to answer it."""
        with self._lock:
            self.requests.append(request)
            answer = self.script.pop(0) if self.script else self.default
        return Answer(hang=True) if self.hang.is_set() else answer

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [request.body for request in self.requests]


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            answer = receiver.record(Received(self.command, self.path, headers, body, time.time()))
            if answer.hang:
                receiver.stopping.wait(_HANG_SECONDS)
                self.close_connection = True
                return
            if answer.delay:
                time.sleep(answer.delay)
            head = [f"HTTP/1.1 {answer.status} Scripted"]
            head.extend(f"{name}: {value}" for name, value in answer.headers.items())
            head.append(f"Content-Length: {len(answer.body)}")
            raw = ("\r\n".join(head) + "\r\n\r\n").encode() + answer.body
            if answer.trickle:
                for index in range(len(raw)):
                    if receiver.stopping.is_set():
                        break
                    self.wfile.write(raw[index : index + 1])
                    self.wfile.flush()
                    time.sleep(answer.trickle)
                self.close_connection = True
                return
            self.wfile.write(raw)
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiver(default: Answer | None = None) -> Iterator[Receiver]:
    """A running receiver, stopped on the way out."""
    running = Receiver(default).start()
    try:
        yield running
    finally:
        running.stop()


class Inbox:
    """An aiosmtpd handler keeping every message; RCPT can be scripted to refuse."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.rcpt_answer: str | None = None
        self.port = 0

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def smtp_controller(inbox: Inbox) -> Controller:
    """An SMTP server on a free 127.0.0.1 port, not yet started."""
    return Controller(inbox, hostname="127.0.0.1", port=free_port())
