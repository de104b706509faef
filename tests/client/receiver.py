"""A stand-in for Tradewatch's ingestion API, for the client library's tests and benchmark.

It implements the v1 contract minimally (API key, batch keys, 413 past a batch limit,
400 with item errors, Idempotency-Key replay, trade-id duplicates) and can be scripted to
misbehave. It runs as its own process so a test can kill it and start it again on the
same port:

    python -m tests.client.receiver --port 8765 --api-key test-key [--count-only]

Control endpoints (no auth), all JSON:
    GET  /_control/state      what arrived: every request, and the stored items per endpoint
    POST /_control/script     {"responses": [...]} answers for the next ingestion requests, each
                              {"status": 500} | {"status": 429, "retry_after": 1} |
                              {"status": 400} | {"delay": 0.5} (then answer normally) |
                              {"hang": 2.0} (store, then close without answering)
    POST /_control/config     {"max_batch": 10, "drop_connections": true}
    POST /_control/reset      forget everything
    POST /_control/trading    {"state": "halted"}: the trading state it answers from now on
                              (in ingestion answers and on GET /api/v1/control, long poll)

Standard library only, and no Django: it is started with `python -m` from the repo root.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ENDPOINTS = {
    "/api/v1/metrics": "samples",
    "/api/v1/trades": "trades",
    "/api/v1/events": "events",
    "/api/v1/heartbeat": None,
}
STORE_NAMES = {
    "/api/v1/metrics": "metrics",
    "/api/v1/trades": "trades",
    "/api/v1/events": "events",
    "/api/v1/heartbeat": "heartbeats",
}
SERVER_MAX_BATCH = 10_000


class State:
    """Everything the receiver saw and stored, behind one lock."""

    def __init__(self, api_key: str, count_only: bool) -> None:
        self.api_key = api_key
        self.count_only = count_only
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.stored: dict[str, list[Any]] = {name: [] for name in STORE_NAMES.values()}
        self.counts: dict[str, int] = {name: 0 for name in STORE_NAMES.values()}
        self.replies: dict[str, tuple[int, dict[str, Any]]] = {}
        self.trade_ids: set[str] = set()
        self.script: deque[dict[str, Any]] = deque()
        self.max_batch = SERVER_MAX_BATCH
        self.drop_connections = False
        self.trading_state = "active"
        self.trading_version = 0
        self.trading_changed = threading.Condition(self.lock)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": list(self.requests),
                "counts": dict(self.counts),
                **{name: list(items) for name, items in self.stored.items()},
            }


class Handler(BaseHTTPRequestHandler):
    """One request; keep-alive (HTTP/1.1) as a real web server keeps it."""

    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms a request), as no real server does.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        if self.path == "/_control/state":
            self._reply(200, self.server.state.snapshot())
        elif self.path.startswith("/api/v1/control"):
            self._trading()
        else:
            self._reply(404, {"detail": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_control/"):
            self._control(body)
        elif self.path in ENDPOINTS:
            self._ingest(body)
        else:
            self._reply(404, {"detail": "not found"})

    def _control(self, body: bytes) -> None:
        state = self.server.state
        data = json.loads(body or b"{}")
        with state.lock:
            if self.path == "/_control/script":
                state.script.extend(data["responses"])
            elif self.path == "/_control/config":
                state.max_batch = int(data.get("max_batch", state.max_batch))
                state.drop_connections = bool(data.get("drop_connections", False))
            elif self.path == "/_control/reset":
                state.reset()
            elif self.path == "/_control/trading":
                state.trading_state = str(data["state"])
                state.trading_version += 1
                state.trading_changed.notify_all()
            else:
                self._reply(404, {"detail": "not found"})
                return
        self._reply(200, {"ok": True})

    def _trading(self) -> None:
        """`GET /api/v1/control[?wait=N]` as Tradewatch answers it (ETag, 304, long poll)."""
        state = self.server.state
        if self.headers.get("Authorization") != f"Api-Key {state.api_key}":
            self._reply(401, {"detail": "Invalid API key."})
            return
        wait = 0.0
        if "wait=" in self.path:
            wait = float(self.path.split("wait=", 1)[1].split("&")[0])
        known = self.headers.get("If-None-Match")
        deadline = time.monotonic() + wait
        with state.lock:
            while known == f'"{state.trading_version}"' and time.monotonic() < deadline:
                state.trading_changed.wait(deadline - time.monotonic())
            version, trading = state.trading_version, state.trading_state
        headers = {"ETag": f'"{version}"', "Tradewatch-Trading-State": trading}
        if known == f'"{version}"':
            self.send_response(304)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._reply(200, {"state": trading, "may_open_positions": trading == "active"}, headers)

    def _ingest(self, body: bytes) -> None:
        state = self.server.state
        key = self.headers.get("Idempotency-Key")
        authorized = self.headers.get("Authorization") == f"Api-Key {state.api_key}"
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        items = _items(self.path, document)
        with state.lock:
            action = state.script.popleft() if state.script and authorized else {}
            state.requests.append(
                {
                    "path": self.path,
                    "idempotency_key": key,
                    "authorized": authorized,
                    "items": len(items) if items is not None else None,
                    "client_port": self.client_address[1],
                    "at": time.time(),
                    "action": action,
                }
            )
        if not authorized:
            self._reply(401, {"detail": "Invalid API key."})
            return
        if "delay" in action:
            time.sleep(float(action["delay"]))
        if "status" in action:
            status = int(action["status"])
            headers = {}
            if "retry_after" in action:
                headers["Retry-After"] = str(action["retry_after"])
            answer: dict[str, Any] = {"detail": f"scripted {status}"}
            if status == 400:
                answer = {"errors": [{"index": 0, "field": "value", "message": "scripted"}]}
            self._reply(status, answer, headers)
            return
        if items is None:
            self._reply(400, {"errors": [{"index": None, "field": None, "message": "bad body"}]})
            return
        if len(items) > state.max_batch:
            self._reply(413, {"detail": f"at most {state.max_batch} items per request"})
            return
        errors = _validate(self.path, items)
        if errors:
            self._reply(400, {"errors": errors})
            return
        status, answer = self._store(key, items)
        answer = {**answer, "trading_state": state.trading_state}
        if "hang" in action:
            # The server did the work but the answer never reaches the client.
            time.sleep(float(action["hang"]))
            self.close_connection = True
            return
        self._reply(status, answer, {"Tradewatch-Trading-State": state.trading_state})

    def _store(self, key: str | None, items: list[Any]) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        name = STORE_NAMES[self.path]
        with state.lock:
            if key is not None and key in state.replies:
                return state.replies[key]
            answer: dict[str, Any] = {"accepted": len(items)}
            if name == "trades":
                fresh = []
                for item in items:
                    if item["id"] not in state.trade_ids:
                        state.trade_ids.add(item["id"])
                        fresh.append(item)
                answer = {"accepted": len(fresh), "duplicates": len(items) - len(fresh)}
                items = fresh
            state.counts[name] += len(items)
            if not state.count_only:
                state.stored[name].extend(items)
            if key is not None:
                state.replies[key] = (202, answer)
            return 202, answer

    def _reply(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        if self.server.state.drop_connections:
            # Close the keep-alive connection without saying so (no Connection: close),
            # as a proxy's idle timeout does.
            self.close_connection = True


def _items(path: str, document: Any) -> list[Any] | None:
    collection = ENDPOINTS[path]
    if not isinstance(document, dict):
        return None
    if collection is None:
        return [document]
    items = document.get(collection)
    return items if isinstance(items, list) else None


def _validate(path: str, items: list[Any]) -> list[dict[str, Any]]:
    """The checks whose failure the client is meant to prevent (all-or-nothing)."""
    errors = []
    numeric = {
        "/api/v1/metrics": ("value",),
        "/api/v1/trades": ("quantity", "price"),
    }.get(path, ())
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": None, "message": "not an object"})
            continue
        for field in numeric:
            value = item.get(field)
            if not isinstance(value, int | float) or not math.isfinite(value):
                errors.append({"index": index, "field": field, "message": "not a finite number"})
    return errors


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Rebinding the port right after a kill must work (the stop/start test).
    allow_reuse_address = True

    def __init__(self, port: int, state: State, verbose: bool = False) -> None:
        self.state = state
        self.verbose = verbose
        super().__init__(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--count-only", action="store_true", help="count items, keep none")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = Server(args.port, State(args.api_key, args.count_only), args.verbose)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"receiver listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


# The remote control used by tests and the benchmark.

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReceiverProcess:
    """A receiver in a child process, which can be killed and started again on its port."""

    def __init__(
        self, port: int | None = None, api_key: str = "test-key", count_only: bool = False
    ) -> None:
        self.port = port or free_port()
        self.api_key = api_key
        self.count_only = count_only
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> ReceiverProcess:
        command = [
            sys.executable, "-m", "tests.client.receiver",
            "--port", str(self.port), "--api-key", self.api_key,
        ]  # fmt: skip
        if self.count_only:
            command.append("--count-only")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.state()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"receiver did not start on port {self.port}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """Stop at once, like a crash: no goodbye to open connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self._call("GET", "/_control/state")
        return state

    def metrics(self, name: str | None = None) -> list[dict[str, Any]]:
        """The metric samples stored so far, optionally only those called `name`."""
        return [s for s in self.state()["metrics"] if name is None or s["name"] == name]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every ingestion request seen so far (answered or not), optionally to one path."""
        return [r for r in self.state()["requests"] if path is None or r["path"] == path]

    def script(self, *responses: dict[str, Any]) -> None:
        self._call("POST", "/_control/script", {"responses": list(responses)})

    def configure(self, **settings: Any) -> None:
        self._call("POST", "/_control/config", settings)

    def trading(self, state: str) -> None:
        """Answer this trading state from now on (and wake long polls)."""
        self._call("POST", "/_control/trading", {"state": state})

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            connection.request(method, path, body=body)
            answer = connection.getresponse()
            return json.loads(answer.read())
        finally:
            connection.close()


@contextmanager
def running_receiver(**kwargs: Any) -> Iterator[ReceiverProcess]:
    receiver = ReceiverProcess(**kwargs).start()
    try:
        yield receiver
    finally:
        receiver.kill()


if __name__ == "__main__":
    main()
