"""Tradewatch client: send metrics, trades, heartbeats and events from a trading system.

Every call returns in about a microsecond and never raises: it appends to a bounded
in-memory queue that a background thread sends to Tradewatch in batches, retrying with
backoff while the server is away and dropping the oldest items (counted) if the queue
fills up. Queued data is flushed when the interpreter exits, for at most a few seconds.
Standard library only; no Django.

Usage, configured from the environment (TRADEWATCH_URL, TRADEWATCH_API_KEY)::

    import tradewatch_client as tw

    tw.heartbeat(status="ok", strategy="mean-reversion")
    tw.record("equity", 10_250.0)
    tw.record("drawdown_pct", 12.5, symbol="BTC/USDT")
    tw.trade("t-1", "BTC/USDT", "buy", quantity=0.1, price=50_000, fee=0.1)
    tw.event("circuit_breaker_tripped", "daily loss limit hit", loss=512.3)
    print(tw.stats())  # queued, sent, dropped_*, retries, last_error, ...

    if tw.may_open_positions():  # the trading state, never blocking (tradewatch_client.control)
        place_order()
    tw.trading_state()  # "active", "reduce_only", "halted" ("unknown" before the first answer)

Or configured in code, with tuning (see `ClientConfig` for every option)::

    tw.configure(url="https://tradewatch.example.com", api_key="...", batch_size=1000)

Or as an object of your own (several servers or keys in one process)::

    client = tw.Client("http://127.0.0.1:8000", api_key="...")
    client.record("latency_ms", 42.0, exchange="binance")
    client.close(timeout=5)

Without TRADEWATCH_URL and TRADEWATCH_API_KEY (and no `configure()`), the module-level
calls do nothing but count themselves: a bot runs the same with monitoring switched off.
Log lines go to the `tradewatch_client` logger, at most one per kind of problem a minute.
"""

from __future__ import annotations

import logging
import threading
from typing import Unpack

from ._version import __version__
from .client import Client, LabelValue, Number, Timestamp
from .config import ClientConfig, Options
from .diagnostics import Stats

__all__ = [
    "Client",
    "ClientConfig",
    "Options",
    "Stats",
    "__version__",
    "close",
    "configure",
    "event",
    "flush",
    "get_client",
    "heartbeat",
    "may_open_positions",
    "record",
    "stats",
    "trade",
    "trading_state",
]

_log = logging.getLogger("tradewatch_client")

_default: Client | None = None
_default_lock = threading.Lock()


def configure(
    url: str | None = None, api_key: str | None = None, **options: Unpack[Options]
) -> Client:
    """Set up the client behind the module-level functions, replacing any previous one.

    Without `url` and `api_key`, they come from TRADEWATCH_URL and TRADEWATCH_API_KEY;
    with neither there, the default client is disabled. Raises ValueError on a bad
    setting: call this at start-up, not in the trading loop.
    """
    global _default
    if url is None and api_key is None:
        config = ClientConfig.from_env(**options)
    else:
        config = ClientConfig(url or "", api_key or "", **options)
    client = Client.from_config(config)
    with _default_lock:
        previous, _default = _default, client
    if previous is not None:
        previous.close(timeout=previous.config.exit_timeout if previous.config else 0.0)
    return client


def get_client() -> Client:
    """The client behind the module-level functions (made from the environment if needed)."""
    return _default or _create_default()


def _create_default() -> Client:
    global _default
    with _default_lock:
        if _default is None:
            try:
                config = ClientConfig.from_env()
            except Exception:
                # A typo in the environment must not stop the bot; say so loudly, once.
                _log.exception("Bad Tradewatch settings in the environment; client disabled")
                config = None
            else:
                if config is None:
                    _log.warning(
                        "TRADEWATCH_URL or TRADEWATCH_API_KEY is not set; "
                        "Tradewatch client disabled"
                    )
            _default = Client.from_config(config)
        return _default


def record(name: str, value: Number, ts: Timestamp | None = None, **labels: LabelValue) -> None:
    """Queue one metric sample with the default client (see `Client.record`)."""
    (_default or _create_default()).record(name, value, ts, **labels)


def trade(
    id: str | int,
    symbol: str,
    side: str,
    quantity: Number,
    price: Number,
    pnl: Number | None = None,
    fee: Number | None = None,
    ts: Timestamp | None = None,
) -> None:
    """Queue one trade with the default client (see `Client.trade`)."""
    (_default or _create_default()).trade(id, symbol, side, quantity, price, pnl, fee, ts)


def heartbeat(status: str = "ok", **info: object) -> None:
    """Queue a heartbeat with the default client (see `Client.heartbeat`)."""
    (_default or _create_default()).heartbeat(status, **info)


def event(type: str, message: str = "", ts: Timestamp | None = None, **context: object) -> None:
    """Queue an event with the default client (see `Client.event`)."""
    (_default or _create_default()).event(type, message, ts, **context)


def flush(timeout: float = 5.0) -> bool:
    """Wait for the default client's queue to drain (see `Client.flush`)."""
    return (_default or _create_default()).flush(timeout)


def close(timeout: float = 5.0) -> bool:
    """Deliver and stop the default client (see `Client.close`)."""
    return (_default or _create_default()).close(timeout)


def trading_state() -> str:
    """The last trading state heard, with the default client (see `Client.trading_state`)."""
    return (_default or _create_default()).trading_state()


def may_open_positions() -> bool:
    """Whether the bot may open positions now (see `Client.may_open_positions`)."""
    return (_default or _create_default()).may_open_positions()


def stats() -> Stats:
    """The default client's counters (see `Stats`)."""
    return (_default or _create_default()).stats()
