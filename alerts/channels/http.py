"""The HTTP transport every HTTP channel kind (recovery actions too) delivers through.

One `httpx.Client` per process, so deliveries reuse connections instead of paying for a
new client and TLS handshake each time. Redirects are never followed (a redirect could
lead anywhere, including inside the network). The destination is vetted again at
connect time, after DNS, on the address the socket actually connects to: a name that
resolved to a public address when the channel was saved cannot be re-pointed at
loopback afterwards (DNS rebinding). One deadline bounds the whole exchange, connect,
TLS, request and answer together, so a receiver that trickles bytes cannot hold a
worker longer than `TRADEWATCH_DELIVERY_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import contextvars
import email.utils
import math
import os
import socket
import ssl
import threading
import time
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import httpcore
import httpx
from django.conf import settings

from alerts.channels.base import DeliveryResult
from alerts.channels.destinations import IPAddress, address_is_refused, resolve

USER_AGENT = "Tradewatch/0.1"
# What a delivery log keeps of an endpoint's answer.
ANSWER_CHARS = 500
# Reading more of an answer than this serves nobody and costs memory.
_ANSWER_READ_BYTES = 64 * 1024
# A Retry-After further away than this is treated as this: the outbox keeps retrying.
_RETRY_AFTER_CAP_SECONDS = 24 * 3600.0

SocketOption = typing.Union[  # noqa: UP007 (mirrors httpcore's own alias)
    tuple[int, int, int], tuple[int, int, bytes | bytearray], tuple[int, int, None, int]
]

# When the current delivery must be over (time.monotonic()); set by `post`.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tradewatch_delivery_deadline", default=None
)


class DestinationRefused(Exception):
    """The host resolved to an address channels may not connect to."""

    def __init__(self, host: str, address: IPAddress, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        shown = host if host == str(address) else f"{host} ({address})"
        super().__init__(
            f"Destination refused: {shown} is {reason}; channels may not deliver there."
        )


class VettingBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to vetted addresses.

    httpcore hands the hostname to `connect_tcp` and, separately, to `start_tls` as
    `server_hostname`; so connecting to the vetted IP here keeps SNI and certificate
    verification on the hostname.
    """

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve `host`, refuse it if any address is unsafe, connect to a vetted one."""
        try:
            addresses = resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        # All of them, not only the first: a resolver answering one public and one
        # private address would otherwise let the private one through on a retry.
        for address in addresses:
            reason = address_is_refused(address)
            if reason is not None:
                raise DestinationRefused(host, address, reason)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_within_deadline(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        assert failure is not None  # getaddrinfo never answers an empty list
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """Refused: deliveries leave the machine over TCP only."""
        raise httpcore.ConnectError("Unix sockets are not a delivery destination.")

    def sleep(self, seconds: float) -> None:
        """Wait between connection retries (httpcore's contract)."""
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the delivery's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=_within_deadline(timeout, httpcore.ConnectTimeout),
        )
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


def _within_deadline(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("The delivery ran out of time.")
    return left if timeout is None else min(timeout, left)


class VettedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that uses `VettingBackend`.

    httpx has no parameter for a network backend, so the pool the parent built is
    replaced by an equivalent one with ours; the connect-time tests fail if an httpx
    upgrade stops honouring it.
    """

    def __init__(self, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            # Proxies from the environment are ignored on purpose (trust_env=False):
            # through a proxy the vetting would judge the proxy, not the destination.
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            # Alerts come in bursts; a connection kept for half a minute serves the
            # repeats and escalations that follow the first notification.
            keepalive_expiry=30.0,
            network_backend=VettingBackend(),
        )


_client_lock = threading.Lock()
_client_state: tuple[int, httpx.Client] | None = None


def client() -> httpx.Client:
    """This process's shared client, created on first use and again after a fork."""
    global _client_state
    state = _client_state
    if state is not None and state[0] == os.getpid():
        return state[1]
    with _client_lock:
        state = _client_state
        if state is None or state[0] != os.getpid():
            # A forked child must not use (nor close: TLS would say goodbye on the
            # parent's sockets) the connections it inherited; it starts its own.
            state = (os.getpid(), _client_new())
            _client_state = state
        return state[1]


def _client_new() -> httpx.Client:
    return httpx.Client(
        transport=VettedTransport(),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread of the parent at fork time.
    global _client_lock
    _client_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def post(
    url: str, *, content: bytes, headers: Mapping[str, str], answer_chars: int = ANSWER_CHARS
) -> DeliveryResult:
    """POST `content` to `url` once and say how it went, never raising for the network.

    2xx is sent; 410 is permanent and disables the channel; 429 retries after the
    endpoint's `Retry-After`; a redirect and any other 4xx are permanent; 5xx, timeouts
    and connection errors retry; a refused destination is permanent. The answer is kept
    to `answer_chars` (more for a caller that reads it, such as Telegram's getUpdates).
    """
    seconds = float(settings.TRADEWATCH_DELIVERY_TIMEOUT_SECONDS)
    started = time.perf_counter()
    token = _deadline.set(time.monotonic() + seconds)
    try:
        with client().stream(
            "POST", url, content=content, headers=dict(headers), timeout=httpx.Timeout(seconds)
        ) as response:
            body = _read_answer(response)
    except DestinationRefused as exc:
        return _failure(started, str(exc), permanent=True)
    except httpx.InvalidURL as exc:
        return _failure(started, f"Not a valid URL: {exc}", permanent=True)
    except httpx.UnsupportedProtocol:
        return _failure(started, "Only http:// and https:// URLs are accepted.", permanent=True)
    except httpx.TimeoutException:
        return _failure(started, f"No answer within {seconds:g} s.", permanent=False)
    except httpx.TransportError as exc:
        return _failure(started, f"{type(exc).__name__}: {exc}", permanent=False)
    finally:
        _deadline.reset(token)
    return result_from_answer(
        status=response.status_code,
        headers=response.headers,
        answer=body.decode(response.encoding or "utf-8", errors="replace"),
        duration_ms=(time.perf_counter() - started) * 1000,
        answer_chars=answer_chars,
    )


def result_from_answer(
    *,
    status: int,
    headers: Mapping[str, str],
    answer: str,
    duration_ms: float,
    answer_chars: int = ANSWER_CHARS,
) -> DeliveryResult:
    """Classify an endpoint's answer as the SPEC's receiver contract says."""
    answer = answer[:answer_chars]
    common: dict[str, typing.Any] = {"status": status, "duration_ms": duration_ms, "answer": answer}
    if 200 <= status < 300:
        return DeliveryResult(ok=True, **common)
    if 300 <= status < 400:
        return DeliveryResult(
            ok=False,
            error=f"The endpoint answered {status} (a redirect); redirects are not "
            "followed, so point the channel at the final URL.",
            permanent=True,
            details={"location": headers.get("location", "")},
            **common,
        )
    if status == 410:
        return DeliveryResult(
            ok=False,
            error="The endpoint answered 410 Gone: the channel is disabled.",
            permanent=True,
            disable_channel=True,
            **common,
        )
    if status == 429:
        return DeliveryResult(
            ok=False,
            error="The endpoint answered 429 Too Many Requests.",
            retry_after=retry_after_seconds(headers.get("retry-after")),
            **common,
        )
    if 400 <= status < 500:
        return DeliveryResult(
            ok=False,
            error=f"The endpoint refused the message ({status}).",
            permanent=True,
            **common,
        )
    return DeliveryResult(
        ok=False,
        error=f"The endpoint failed ({status}).",
        retry_after=retry_after_seconds(headers.get("retry-after")),
        **common,
    )


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date), if any."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(tz=UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP_SECONDS)


def _read_answer(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _ANSWER_READ_BYTES:
            break
    return b"".join(chunks)[:_ANSWER_READ_BYTES]


def _failure(started: float, error: str, *, permanent: bool) -> DeliveryResult:
    return DeliveryResult(
        ok=False,
        error=error,
        permanent=permanent,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
