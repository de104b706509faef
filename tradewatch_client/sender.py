"""The sender thread: drains the queue, batches per endpoint, delivers with retries."""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from collections.abc import Callable

from .buffer import Buffer
from .config import ClientConfig
from .diagnostics import Counters, RateLimitedLog
from .payloads import (
    ENDPOINTS,
    EVENT,
    HEARTBEAT,
    METRIC,
    TRADE,
    Endpoint,
    InvalidItem,
    Payload,
    describe,
    encodable,
    encode,
    to_payload,
)
from .transport import HttpTransport, Response, TransportError

# Partial batches go out most urgent first: an event (a tripped circuit breaker) matters
# more than the hundredth equity sample.
SEND_ORDER = (EVENT, TRADE, METRIC)

# Beyond this many doublings the delay is long capped anyway; also keeps ** finite.
MAX_BACKOFF_EXPONENT = 32


class Sender:
    """Delivers everything put in the buffer, one batch at a time, until told to stop.

    One pass takes the items queued when it starts, validates them (an invalid item is
    dropped on its own), sends each endpoint's batch as soon as it is full and the
    partial ones at the end of the pass. Between passes it sleeps `flush_interval`
    unless a full batch is already waiting or `wake` is set (by flush() or event()).

    Delivery of one batch: 2xx settles it; 413 splits it in half; 429, and 503 with a
    Retry-After (the server's database is away), wait Retry-After and try again; other
    5xx, timeouts and connection failures back off exponentially with jitter, reusing
    the batch's Idempotency-Key so a retry after a lost answer is not stored twice;
    other 4xx (400 bad batch, 401 bad key) drop it, since sending it again cannot help.
    """

    def __init__(
        self,
        *,
        config: ClientConfig,
        buffer: Buffer,
        counters: Counters,
        wake: threading.Event,
        stop: threading.Event,
        settled: threading.Condition,
        log: RateLimitedLog,
        report_internal_error: Callable[[str], None],
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self._config = config
        self._buffer = buffer
        self._counters = counters
        self._wake = wake
        self._stop = stop
        self._settled = settled
        self._log = log
        self._report_internal_error = report_internal_error
        self._on_state = on_state
        self._transport = HttpTransport(config.url, config.api_key, config.timeout)
        self._random = random.Random()  # noqa: S311  # jitter, not secrets
        self._failing = False

    def run(self) -> None:
        """The thread's body: pass after pass until `stop` is set."""
        try:
            while not self._stop.is_set():
                try:
                    self._drain_pass()
                except Exception:
                    self._report_internal_error("sender")
                    # A bug that repeats must not turn into a busy loop.
                    self._stop.wait(self._config.flush_interval)
                if len(self._buffer) >= self._config.batch_size:
                    continue
                self._wake.wait(self._config.flush_interval)
                self._wake.clear()
        finally:
            self._abandon_queue()
            self._transport.close()

    def _drain_pass(self) -> None:
        batch_size = self._config.batch_size
        batches: dict[int, list[Payload]] = {kind: [] for kind in SEND_ORDER}
        heartbeat: Payload | None = None
        # Only what is queued now: under a steady stream a pass must still end, or the
        # partial batches (events among them) would wait for the stream to pause.
        for _ in range(len(self._buffer)):
            if self._stop.is_set():
                break
            item = self._buffer.take()
            try:
                payload = to_payload(item)
            except InvalidItem as exc:
                self._counters.dropped_invalid += 1
                self._log(logging.WARNING, "invalid", "Dropped invalid %s: %s", describe(item), exc)
                continue
            except Exception:
                # A mapping whose items() raises, say: still this item's problem alone.
                self._counters.dropped_invalid += 1
                self._report_internal_error("checking a queued item")
                continue
            kind = item[0]
            if kind == HEARTBEAT:
                # Only the newest heartbeat says anything the server needs to know.
                if heartbeat is not None:
                    self._counters.coalesced += 1
                heartbeat = payload
                continue
            assert isinstance(kind, int)
            batch = batches[kind]
            batch.append(payload)
            if len(batch) >= batch_size:
                self._deliver(ENDPOINTS[kind], batch)
                batches[kind] = []
        for kind, batch in batches.items():
            if batch:
                self._deliver(ENDPOINTS[kind], batch)
        if heartbeat is not None:
            self._deliver(ENDPOINTS[HEARTBEAT], [heartbeat])
        self._notify_settled()

    def _deliver(self, endpoint: Endpoint, payloads: list[Payload]) -> None:
        """Settle one batch, whatever happens: no item may end up neither sent nor dropped."""
        settled_before = self._counters.settled()
        try:
            self._send(endpoint, payloads)
        except Exception:
            self._report_internal_error(f"sending to {endpoint.path}")
            unsettled = len(payloads) - (self._counters.settled() - settled_before)
            self._counters.dropped_failed += max(0, unsettled)
        self._notify_settled()

    def _send(self, endpoint: Endpoint, payloads: list[Payload]) -> None:
        body, payloads = self._encode(endpoint, payloads)
        if not payloads:
            return
        count = len(payloads)
        # One key per batch, the same on every retry of it: the server stores a batch
        # once even when its first answer was lost on the way back.
        key = str(uuid.uuid4())
        failures = 0
        server_errors = 0
        while True:
            if self._stop.is_set():
                self._give_up(endpoint, count, "the client was closed before delivery")
                return
            try:
                response = self._transport.post(endpoint.path, body, key)
            except TransportError as exc:
                self._problem("unreachable", f"{endpoint.path}: {exc}", count)
                delay = self._backoff(failures)
            else:
                status = response.status
                if 200 <= status < 300:
                    self._delivered(endpoint, count, response)
                    return
                if status == 413 and count > 1:
                    # Too large for this server: halves, each a new batch with its own key.
                    half = count // 2
                    self._send(endpoint, payloads[:half])
                    self._send(endpoint, payloads[half:])
                    return
                if status == 429:
                    self._problem("throttled", _http_error(endpoint, response), count)
                    delay = (
                        min(response.retry_after, self._config.max_retry_after)
                        if response.retry_after is not None
                        else self._backoff(failures)
                    )
                elif status == 503 and response.retry_after is not None:
                    # Unavailable for now (its database is away) and saying when to come
                    # back: the batch is not at fault, so this is not one of the server
                    # errors that give it up; wait as told, as for 429.
                    self._problem("unavailable", _http_error(endpoint, response), count)
                    delay = min(response.retry_after, self._config.max_retry_after)
                elif status >= 500 or status == 408:
                    server_errors += 1
                    self._problem("server-error", _http_error(endpoint, response), count)
                    if server_errors >= self._config.max_server_error_attempts:
                        self._give_up(endpoint, count, f"{server_errors} server errors")
                        return
                    delay = self._backoff(failures)
                else:
                    self._rejected(endpoint, count, response)
                    return
            failures += 1
            if self._stop.wait(delay):
                self._give_up(endpoint, count, "the client was closed while retrying")
                return
            self._counters.retries += 1

    def _encode(self, endpoint: Endpoint, payloads: list[Payload]) -> tuple[bytes, list[Payload]]:
        try:
            return encode(endpoint, payloads), payloads
        except (ValueError, TypeError, RecursionError):
            pass
        # Rare: something in a context or info mapping JSON cannot carry (NaN, a cycle).
        good = [payload for payload in payloads if encodable(payload)]
        dropped = len(payloads) - len(good)
        self._counters.dropped_invalid += dropped
        self._log(
            logging.WARNING,
            "invalid",
            "Dropped %d %s item(s) that cannot be encoded as JSON (NaN or infinity, cycles)",
            dropped,
            endpoint.name,
        )
        return (encode(endpoint, good) if good else b""), good

    def _delivered(self, endpoint: Endpoint, count: int, response: Response) -> None:
        self._counters.sent += count
        if response.trading_state is not None and self._on_state is not None:
            self._on_state(response.trading_state)
        if endpoint is ENDPOINTS[TRADE]:
            self._counters.duplicates += _duplicates(response.body)
        if self._failing:
            self._failing = False
            self._log(logging.INFO, "recovered", "Tradewatch accepts data again")

    def _rejected(self, endpoint: Endpoint, count: int, response: Response) -> None:
        self._counters.dropped_rejected += count
        self._counters.last_error = _http_error(endpoint, response)
        if response.status in (401, 403):
            self._log(
                logging.ERROR,
                "unauthorized",
                "Tradewatch refused the API key (HTTP %d) and dropped %d %s item(s): "
                "check TRADEWATCH_API_KEY. %s",
                response.status,
                count,
                endpoint.name,
                response.excerpt(),
            )
        else:
            self._log(
                logging.ERROR,
                "rejected",
                "Tradewatch rejected a batch of %d %s item(s) (HTTP %d), dropped it: %s",
                count,
                endpoint.name,
                response.status,
                response.excerpt(),
            )

    def _give_up(self, endpoint: Endpoint, count: int, reason: str) -> None:
        self._counters.dropped_failed += count
        self._log(
            logging.ERROR,
            "gave-up",
            "Gave up on %d %s item(s): %s (last error: %s)",
            count,
            endpoint.name,
            reason,
            self._counters.last_error,
        )

    def _problem(self, kind: str, message: str, count: int) -> None:
        self._failing = True
        self._counters.last_error = message
        self._log(
            logging.WARNING, kind, "Could not deliver %d item(s), will retry: %s", count, message
        )

    def _backoff(self, failures: int) -> float:
        config = self._config
        exponent = min(failures, MAX_BACKOFF_EXPONENT)
        delay = min(
            config.backoff_max, config.backoff_initial * config.backoff_multiplier**exponent
        )
        # Jitter in [delay/2, delay]: many bots restarting together must not retry in step.
        return delay * (0.5 + self._random.random() / 2)

    def _notify_settled(self) -> None:
        with self._settled:
            self._settled.notify_all()

    def _abandon_queue(self) -> None:
        abandoned = 0
        while True:
            try:
                self._buffer.take()
            except IndexError:
                break
            abandoned += 1
        if abandoned:
            self._counters.dropped_failed += abandoned
            self._log(
                logging.WARNING,
                "abandoned",
                "Closed with %d item(s) still queued; they were not sent",
                abandoned,
            )
        self._notify_settled()


def _http_error(endpoint: Endpoint, response: Response) -> str:
    return f"HTTP {response.status} from {endpoint.path}: {response.excerpt(200)}"


def _duplicates(body: bytes) -> int:
    try:
        answer = json.loads(body)
    except ValueError:
        return 0
    duplicates = answer.get("duplicates") if isinstance(answer, dict) else None
    return duplicates if isinstance(duplicates, int) else 0
