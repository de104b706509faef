"""HTTP to the ingestion API over one persistent keep-alive connection."""

from __future__ import annotations

import email.utils
import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._version import __version__

USER_AGENT = f"tradewatch-client/{__version__}"


class TransportError(Exception):
    """The request got no HTTP answer: refused, reset, timed out, DNS, TLS."""


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status, body, and the server's Retry-After in seconds if any."""

    status: int
    body: bytes
    retry_after: float | None
    # The trading state Tradewatch answers every accepted batch with.
    trading_state: str | None = None

    def excerpt(self, limit: int = 300) -> str:
        """The start of the body, for log lines and `last_error`."""
        return self.body[:limit].decode("utf-8", "replace")


class HttpTransport:
    """POSTs JSON bodies to one server, reusing a single connection across batches.

    Used by the sender thread only, so it holds no lock. Any failure closes the
    connection; the next request opens a fresh one.
    """

    def __init__(self, url: str, api_key: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Api-Key {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._connection: http.client.HTTPConnection | None = None
        # Whether the open connection already carried a request (and so may have been
        # closed by the server while idle).
        self._reused = False

    def post(self, path: str, body: bytes, idempotency_key: str) -> Response:
        """Send one request and read the whole answer; raise TransportError without one."""
        headers = {**self._headers, "Idempotency-Key": idempotency_key}
        while True:
            connection = self._connect()
            reused = self._reused
            try:
                connection.request("POST", self._prefix + path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A keep-alive connection the server closed while idle fails on the next
                # request; that says nothing about the server, so try once more at once on
                # a new connection (the Idempotency-Key makes a repeat harmless).
                if reused and isinstance(exc, ConnectionError):
                    continue
                raise TransportError(_describe(exc)) from exc
            self._reused = True
            if answer.will_close:
                self.close()
            return Response(
                answer.status,
                data,
                _retry_after(answer.getheader("Retry-After")),
                answer.getheader("Tradewatch-Trading-State"),
            )

    def close(self) -> None:
        """Close the connection if one is open."""
        connection, self._connection = self._connection, None
        self._reused = False
        if connection is not None:
            connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = cls(self._host, self._port, timeout=self._timeout)
        return self._connection


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
