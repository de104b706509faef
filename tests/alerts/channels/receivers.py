"""Local receivers for the channel tests: an HTTP endpoint and an SMTP server.

The HTTP receiver records every request (method, path, headers, body) and answers from a
script: a status sequence, headers such as Retry-After, a delay, an answer trickled a
byte at a time, or no answer at all.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from alerts.channels.base import NotificationMessage


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
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers by script."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Answer] = deque()
        self.default = Answer()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; then with `default`."""
        self.script.extend(answers)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def record(self, request: Recorded) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else self.default


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
            answer = receiver.record(Recorded(self.command, self.path, headers, body))
            if answer.hang:
                receiver.stopping.wait(30)
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alert_payload(**overrides: Any) -> dict[str, Any]:
    """An alert as the SPEC's webhook payload carries it."""
    alert: dict[str, Any] = {
        "id": 42,
        "fingerprint": "9f2c1e",
        "rule": "drawdown",
        "source": "alpha-bot",
        "severity": "CRITICAL",
        "status": "firing",
        "value": 21.5,
        "threshold": 20.0,
        "message": "Drawdown 21.5 % is past 20 %",
        "first_seen": "2025-03-04T10:00:00+00:00",
        "last_seen": "2025-03-04T10:05:00+00:00",
        "count": 3,
        "url": "/admin/alerts/alert/42/change/",
    }
    alert.update(overrides)
    return alert


def notification(
    event: str = "firing",
    *,
    digest: tuple[dict[str, Any], ...] = (),
    webhook_id: str = "msg_2Vxp9c0a1b2c3d4e",
    **alert_overrides: Any,
) -> NotificationMessage:
    """A message for one alert, as the delivery task builds it."""
    return NotificationMessage(
        webhook_id=webhook_id, event=event, alert=alert_payload(**alert_overrides), digest=digest
    )
