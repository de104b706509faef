"""How a client reaches Tradewatch and how hard it tries: one immutable value."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict, Unpack
from urllib.parse import urlsplit

# The server refuses larger batches with 413; there is no point in building them.
SERVER_MAX_BATCH = 10_000

URL_VARIABLE = "TRADEWATCH_URL"
API_KEY_VARIABLE = "TRADEWATCH_API_KEY"


class Options(TypedDict, total=False):
    """The tunable fields of `ClientConfig`, for `Client(url, api_key, **options)`."""

    max_queue: int
    batch_size: int
    flush_interval: float
    timeout: float
    backoff_initial: float
    backoff_max: float
    backoff_multiplier: float
    max_retry_after: float
    max_server_error_attempts: int
    exit_timeout: float
    log_interval: float
    control_wait: float
    control_stale_after: float
    control_fail: str


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where to send, how to batch, and how to back off; validated when built.

    A mistake here is a programming or deployment error found at start-up, so it raises
    `ValueError` naming the field (the trading-loop calls themselves never raise).
    """

    url: str
    api_key: str = field(repr=False)
    # Items waiting to be sent; beyond this the oldest are dropped (and counted).
    max_queue: int = 100_000
    # Items per request; the server accepts up to SERVER_MAX_BATCH.
    batch_size: int = 500
    # How long the sender lets a partial batch fill before sending it.
    flush_interval: float = 0.25
    # Socket timeout for connecting and for each read of an answer.
    timeout: float = 5.0
    # Exponential backoff (with jitter) after 5xx answers and connection failures.
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    # A server asking for a longer pause than this through Retry-After is not obeyed beyond it.
    max_retry_after: float = 60.0
    # 5xx answers to one batch before it is given up (a batch the server keeps failing on
    # must not block everything behind it). Connection failures, and 503 with Retry-After
    # (Tradewatch's database is away), retry without limit: those say nothing about the
    # batch, and the queue bound already limits memory.
    max_server_error_attempts: int = 10
    # How long interpreter exit may wait for queued data to be delivered.
    exit_timeout: float = 2.0
    # At most one log line per kind of problem per this many seconds.
    log_interval: float = 60.0
    # The trading state (trading_state(), may_open_positions()): how long a long poll
    # of GET /api/v1/control waits for a change, after how long without word from
    # Tradewatch the state is stale, and what a stale state means: "closed" (halted) or
    # "open" (the last state heard). See tradewatch_client.control for the trade-off.
    control_wait: float = 25.0
    control_stale_after: float = 60.0
    control_fail: str = "closed"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: expected http(s)://host[:port][/prefix], got {self.url!r}")
        if not self.api_key:
            raise ValueError("api_key: must not be empty")
        if self.max_queue < 1:
            raise ValueError(f"max_queue: must be at least 1, got {self.max_queue}")
        if not 1 <= self.batch_size <= SERVER_MAX_BATCH:
            raise ValueError(
                f"batch_size: must be between 1 and {SERVER_MAX_BATCH}, got {self.batch_size}"
            )
        if self.max_server_error_attempts < 1:
            raise ValueError(
                "max_server_error_attempts: must be at least 1, "
                f"got {self.max_server_error_attempts}"
            )
        if self.backoff_multiplier < 1:
            raise ValueError(f"backoff_multiplier: must be >= 1, got {self.backoff_multiplier}")
        for name in (
            "flush_interval",
            "timeout",
            "backoff_initial",
            "backoff_max",
            "max_retry_after",
            "exit_timeout",
            "log_interval",
            "control_wait",
            "control_stale_after",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        if self.control_fail not in ("closed", "open"):
            raise ValueError(f"control_fail: 'closed' or 'open', got {self.control_fail!r}")
        if not 0 <= self.control_wait <= 60:
            raise ValueError(f"control_wait: 0 to 60 seconds, got {self.control_wait!r}")
        if self.control_stale_after <= self.control_wait:
            raise ValueError(
                "control_stale_after: must be longer than control_wait (a long poll is "
                f"silent that long), got {self.control_stale_after!r}"
            )
        # Zero would make the sender spin when idle; zero timeout makes sockets non-blocking.
        for name in ("flush_interval", "timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Unpack[Options]
    ) -> ClientConfig | None:
        """Build from TRADEWATCH_URL and TRADEWATCH_API_KEY; None when either is unset."""
        env = os.environ if environ is None else environ
        url = env.get(URL_VARIABLE, "").strip()
        api_key = env.get(API_KEY_VARIABLE, "").strip()
        if not url or not api_key:
            return None
        return cls(url, api_key, **options)
