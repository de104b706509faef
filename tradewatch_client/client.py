"""The `Client`: the calls a trading loop makes, and the sender thread's lifecycle."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Unpack

from .buffer import Buffer
from .config import ClientConfig, Options
from .control import ACTIVE, StateWatch
from .diagnostics import Counters, RateLimitedLog, Stats
from .payloads import EVENT, HEARTBEAT, METRIC, TRADE
from .sender import Sender

# A local name: one dictionary lookup fewer on every call of the hot path.
_now = time.time

Timestamp = float | datetime | str
# Decimal because prices and quantities often are one in trading code; sent as floats.
Number = float | Decimal
LabelValue = str | int | float | bool

# Clients whose sender was started and that were not closed, for the exit and fork
# hooks. A started client lives until close(): its thread holds its queue either way.
_live_clients: set[Client] = set()

# How often flush() re-checks on its own, in case a notification was missed.
_FLUSH_POLL = 0.1


class Client:
    """Queues metrics, trades, heartbeats and events; a daemon thread sends them in batches.

    The calls return in about a microsecond and never raise: each appends a tuple to a
    bounded queue and returns. Bad arguments and internal errors are logged (rate
    limited) and counted in `stats()`. Thread-safe; after `os.fork()` the child starts
    its own sender on its first call and leaves the parent's queue to the parent.
    """

    def __init__(self, url: str, api_key: str, **options: Unpack[Options]) -> None:
        self._setup(ClientConfig(url, api_key, **options))

    @classmethod
    def from_config(cls, config: ClientConfig | None) -> Client:
        """A client for `config`; with None, a disabled one that counts and ignores calls."""
        client = cls.__new__(cls)
        client._setup(config)
        return client

    @classmethod
    def from_env(cls, **options: Unpack[Options]) -> Client:
        """A client configured by TRADEWATCH_URL and TRADEWATCH_API_KEY (ValueError if unset)."""
        config = ClientConfig.from_env(**options)
        if config is None:
            raise ValueError("TRADEWATCH_URL and TRADEWATCH_API_KEY must both be set")
        return cls.from_config(config)

    def _setup(self, config: ClientConfig | None) -> None:
        self.config = config
        self._buffer = Buffer(config.max_queue if config else 1)
        # Bound once: the hot path calls it without looking up two attributes.
        self._put = self._buffer.put
        self._closed = False
        self._running = False
        self._thread: threading.Thread | None = None
        self._watch: StateWatch | None = None
        self._new_primitives()

    def _new_primitives(self) -> None:
        """Locks, events and counters: made anew after a fork, where the old ones may be held."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._settled = threading.Condition()
        self._counters = Counters()
        self._log = RateLimitedLog(self.config.log_interval if self.config else 60.0)

    # The hot path. Each call: one attribute test, one tuple, one deque append. All the
    # checking happens on the sender thread (see payloads.to_payload).

    def record(
        self, name: str, value: Number, ts: Timestamp | None = None, **labels: LabelValue
    ) -> None:
        """Queue one metric sample, e.g. `record("drawdown_pct", 12.5, symbol="BTC/USDT")`.

        `ts` is UNIX seconds, a datetime or an ISO 8601 string with offset; default now.
        """
        try:
            if self._running or self._start():
                self._put((METRIC, _now() if ts is None else ts, name, value, labels))
        except Exception:
            self._internal_error("record")

    def trade(
        self,
        id: str | int,
        symbol: str,
        side: str,
        quantity: Number,
        price: Number,
        pnl: Number | None = None,
        fee: Number | None = None,
        ts: Timestamp | None = None,
    ) -> None:
        """Queue one trade (`side` is "buy" or "sell"); the server ignores a repeated `id`."""
        try:
            if self._running or self._start():
                ts = _now() if ts is None else ts
                self._put((TRADE, ts, id, symbol, side, quantity, price, pnl, fee))
        except Exception:
            self._internal_error("trade")

    def heartbeat(self, status: str = "ok", **info: object) -> None:
        """Queue a heartbeat; of several queued, only the newest is sent."""
        try:
            if self._running or self._start():
                self._put((HEARTBEAT, _now(), status, info))
        except Exception:
            self._internal_error("heartbeat")

    def event(
        self, type: str, message: str = "", ts: Timestamp | None = None, **context: object
    ) -> None:
        """Queue an event (e.g. "circuit_breaker_tripped") and wake the sender at once."""
        try:
            if self._running or self._start():
                self._put((EVENT, _now() if ts is None else ts, type, message, context))
                # Events are rare and urgent: worth the microsecond of Event.set().
                self._wake.set()
        except Exception:
            self._internal_error("event")

    # The trading state: read on the trading loop, kept fresh by a thread of its own.

    def trading_state(self) -> str:
        """The last trading state heard: `active`, `reduce_only`, `halted` (or `unknown`
        before the first answer). Once stale (no word for `control_stale_after` seconds)
        it is `halted` with control_fail="closed". Never blocks, never raises; a
        disabled client answers `active`."""
        try:
            watch = self._watch or self._watch_start()
            return ACTIVE if watch is None else watch.state()
        except Exception:
            self._internal_error("trading_state")
            return ACTIVE if self.config is None or self.config.control_fail == "open" else "halted"

    def may_open_positions(self) -> bool:
        """Whether the bot may open positions now: the state is `active` and fresh (with
        control_fail="open": also when stale or not yet known). Never blocks or raises."""
        try:
            watch = self._watch or self._watch_start()
            return True if watch is None else watch.may_open()
        except Exception:
            self._internal_error("may_open_positions")
            return self.config is None or self.config.control_fail == "open"

    def _watch_start(self) -> StateWatch | None:
        """Start the state thread on first use (None: a disabled or closed client)."""
        with self._lock:
            if self._watch is not None:
                return self._watch
            config = self.config
            if config is None or self._closed:
                return None
            watch = StateWatch(
                config.url, config.api_key, wait=config.control_wait,
                stale_after=config.control_stale_after, fail=config.control_fail,
                timeout=config.timeout, log=self._log,
            )  # fmt: skip
            watch.start()
            self._watch = watch
            _live_clients.add(self)
            return watch

    def _state_heard(self, state: str) -> None:
        watch = self._watch
        if watch is not None:
            watch.heard(state)

    # Control, called rarely.

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued before this call is sent or dropped.

        Returns False if that took longer than `timeout` seconds (the server is away);
        the data stays queued and keeps being retried.
        """
        try:
            target = self._buffer.appended()
            if self._settled_count() >= target:
                return True
            self._wake.set()
            deadline = time.monotonic() + timeout
            with self._settled:
                while self._settled_count() < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._settled.wait(min(remaining, _FLUSH_POLL))
            return True
        except Exception:
            self._internal_error("flush")
            return False

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (waiting at most `timeout` seconds), then stop the sender.

        Returns whether everything was delivered. Calls made after close() are ignored
        and counted as `dropped_closed`. Closing twice is harmless.
        """
        try:
            deadline = time.monotonic() + timeout
            with self._lock:
                self._closed = True
                self._running = False
                thread = self._thread
            _live_clients.discard(self)
            if self._watch is not None:
                self._watch.stop()
            if thread is None or not thread.is_alive():
                return self._settled_count() >= self._buffer.appended()
            # A slice of the time is kept for the sender to stop and count what it gives
            # up (it leaves a backoff wait at once).
            delivered = self.flush(timeout - min(0.1, timeout / 5))
            self._stop.set()
            self._wake.set()
            # Bounded: a sender stuck in a socket read is a daemon thread and dies with
            # the process; exit must not wait for it.
            thread.join(max(0.0, deadline - time.monotonic()))
            return delivered
        except Exception:
            self._internal_error("close")
            return False

    def stats(self) -> Stats:
        """The client's counters (see `Stats`); cheap enough to export every few seconds."""
        counters = self._counters
        buffer = self._buffer
        settled = counters.settled()
        return Stats(
            queued=buffer.appended(),
            pending=max(0, len(buffer) + buffer.taken() - settled),
            sent=counters.sent,
            duplicates=counters.duplicates,
            coalesced=counters.coalesced,
            dropped_queue_full=buffer.dropped(),
            dropped_invalid=counters.dropped_invalid,
            dropped_rejected=counters.dropped_rejected,
            dropped_failed=counters.dropped_failed,
            dropped_closed=counters.dropped_closed,
            retries=counters.retries,
            internal_errors=counters.internal_errors,
            last_error=counters.last_error,
        )

    def __repr__(self) -> str:
        url = self.config.url if self.config else "disabled"
        state = "closed" if self._closed else "running" if self._running else "idle"
        return f"<Client {url} {state}>"

    # Internals.

    def _settled_count(self) -> int:
        return self._counters.settled() + self._buffer.dropped()

    def _start(self) -> bool:
        """Start the sender thread (first call, or first call after a fork).

        Returns False, counting the call as dropped, when this client takes no data.
        """
        with self._lock:
            if self._running:
                return True
            if self._closed or self.config is None:
                self._counters.dropped_closed += 1
                # A disabled client said so when it was made; a closed one being used is
                # a bug in the program worth a (rate-limited) line.
                if self._closed:
                    self._log(
                        logging.WARNING, "refused", "Tradewatch client is closed; call ignored"
                    )
                return False
            sender = Sender(
                config=self.config,
                buffer=self._buffer,
                counters=self._counters,
                wake=self._wake,
                stop=self._stop,
                settled=self._settled,
                log=self._log,
                report_internal_error=self._internal_error,
                on_state=self._state_heard,
            )
            thread = threading.Thread(target=sender.run, name="tradewatch-client", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # "can't create new thread at interpreter shutdown": nothing will send.
                self._counters.dropped_closed += 1
                self._log(logging.WARNING, "refused", "Tradewatch client cannot start a thread now")
                return False
            self._thread = thread
            _live_clients.add(self)
            self._running = True
            return True

    def _internal_error(self, where: str) -> None:
        """Count and log (with traceback, rate limited) an exception that must not escape."""
        try:
            with self._lock:
                self._counters.internal_errors += 1
            self._log(
                logging.ERROR,
                "internal",
                "Tradewatch client error in %s (ignored, counted)",
                where,
                exc_info=True,
            )
        except Exception:  # noqa: S110  # the last line of defence has nobody left to tell
            pass

    def _after_fork_in_child(self) -> None:
        # The sender thread did not survive the fork, and any lock it held stays held
        # forever in the child: start over. The queued items belong to the parent, which
        # still sends them; sending them here too would store them twice.
        self._buffer.reset()
        self._new_primitives()
        self._thread = None
        self._running = False
        self._watch = None


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        client._after_fork_in_child()


def _close_all_at_exit() -> None:
    """Give every client's queued data one bounded chance to leave before the process does."""
    clients = [client for client in list(_live_clients) if client.config is not None]
    if not clients:
        return
    # Wake all senders first so they flush in parallel within one shared deadline.
    for client in clients:
        client._wake.set()
    deadline = time.monotonic() + max(
        client.config.exit_timeout for client in clients if client.config
    )
    for client in clients:
        client.close(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
