"""The trading state Tradewatch wants the bot to obey, known without ever waiting for it.

A daemon thread long-polls `GET /api/v1/control?wait=N` (and every ingestion answer's
`Tradewatch-Trading-State` header updates it too); the trading loop reads the last
state it got, one tuple read and a clock read, in well under a microsecond.

When nothing has been heard from Tradewatch for `control_stale_after` seconds, the
answer depends on `control_fail`:

- `closed` (the default): treat the bot as halted. A monitor that cannot be reached
  cannot stop the bot either, so the bot stops itself: safe for money, but a Tradewatch
  outage (or a network split) stops trading.
- `open`: keep the last state heard. Trading goes on through an outage of the monitor,
  and so would a halt issued meanwhile go unheard.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from .transport import USER_AGENT

ACTIVE: Final = "active"
HALTED: Final = "halted"
UNKNOWN: Final = "unknown"
STATES: Final = frozenset({"active", "reduce_only", "halted"})

_monotonic = time.monotonic
# A 304 sooner than this to a long poll means the server did not hold it.
_EARLY: Final = 1.0


class StateWatch:
    """The last known trading state, and the thread that keeps it fresh."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        wait: float,
        stale_after: float,
        fail: str,
        timeout: float,
        log: Callable[..., None],
    ) -> None:
        # (state, when it was last confirmed): replaced whole, so a reader never sees a
        # state with another state's time.
        self._known: tuple[str, float] = (UNKNOWN, _monotonic())
        self._stale_after = stale_after
        self._open = fail == "open"
        self._wait = wait
        self._timeout = timeout
        self._log = log
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path.rstrip("/") + f"/api/v1/control?wait={max(0, round(wait))}"
        self._headers = {"Authorization": f"Api-Key {api_key}", "User-Agent": USER_AGENT}
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.failures = 0

    # The trading loop's side: never blocks, never raises.

    def state(self) -> str:
        """The last state heard, or `halted` once it is stale with fail=closed."""
        state, at = self._known
        if _monotonic() - at > self._stale_after and not self._open:
            return HALTED
        return state

    def may_open(self) -> bool:
        """Whether the bot may open positions now (`active`; `unknown` only with fail=open)."""
        state, at = self._known
        if state == ACTIVE:
            return self._open or _monotonic() - at <= self._stale_after
        return state == UNKNOWN and self._open

    def heard(self, state: str) -> None:
        """A state from Tradewatch (a long poll, or an ingestion answer's header)."""
        if state in STATES:
            self._known = (state, _monotonic())

    # The thread's side.

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="tradewatch-control", daemon=True)
        thread.start()
        self._thread = thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        backoff = 0.1
        while not self._stop.is_set():
            try:
                if connection is None:
                    cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                    connection = cls(self._host, self._port, timeout=self._wait + self._timeout)
                headers = dict(self._headers)
                if self._etag:
                    headers["If-None-Match"] = self._etag
                asked = _monotonic()
                connection.request("GET", self._path, headers=headers)
                answer = connection.getresponse()
                body = answer.read()
                self.polls += 1
                early = answer.status == 304 and _monotonic() - asked < _EARLY
                if answer.status == 200:
                    self._etag = answer.getheader("ETag")
                    self.heard(str(json.loads(body).get("state")))
                elif answer.status == 304:
                    self.heard(answer.getheader("Tradewatch-Trading-State") or self._known[0])
                else:
                    raise OSError(f"HTTP {answer.status}: {body[:200]!r}")
                if answer.will_close:
                    connection.close()
                    connection = None
                backoff = 0.1
                if early and self._wait >= _EARLY:
                    # Answered at once although asked to wait: the server holds as many
                    # polls as it may. Ask again a little later, not in a busy loop.
                    self._stop.wait(_EARLY)
            except Exception as exc:  # away, refused, bad answer: retry, never raise
                self.failures += 1
                if connection is not None:
                    connection.close()
                    connection = None
                self._log(logging.WARNING, "control", "Tradewatch trading state unavailable: %s",
                          exc)  # fmt: skip
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        if connection is not None:
            connection.close()
