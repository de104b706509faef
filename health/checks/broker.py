"""Broker: a Redis PING (and, optionally, the length of Celery's queues)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from kombu import Connection

from health.scoring import Status

from .base import CheckResult, Probe, Target, config_error, elapsed_ms, number, text


def _queues(config: dict[str, Any]) -> list[str]:
    queues = config.get("queues", [])
    if not isinstance(queues, list) or not all(isinstance(q, str) and q for q in queues):
        raise config_error("queues", "a list of queue names")
    return queues


class BrokerProbe(Probe):
    """CRITICAL when the broker does not answer; DEGRADED when a queue is too long.

    Config: `url` (empty: Celery's broker), `queues` (names whose length to report)
    and `queue_length_limit`. A broker other than Redis is checked by connecting.
    """

    kind = "broker"

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        text(config, "url")
        _queues(config)
        number(config, "queue_length_limit", None, minimum=0)

    def run(self, target: Target, now: datetime) -> CheckResult:
        url = text(target.config, "url") or settings.CELERY_BROKER_URL
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return self._connect_only(url, target)
        started = time.perf_counter()
        client = redis.Redis.from_url(
            url, socket_timeout=target.timeout, socket_connect_timeout=target.timeout,
            retry_on_timeout=False,
        )  # fmt: skip
        try:
            client.ping()
            latency = elapsed_ms(started, time.perf_counter())
            lengths = {queue: int(client.llen(queue)) for queue in _queues(target.config)}
        except redis.RedisError as exc:
            return CheckResult(
                Status.CRITICAL, latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"Redis at {_shown(url)}: {exc}"[:300]], details={"url": _shown(url)},
            )  # fmt: skip
        finally:
            client.close()
        details: dict[str, Any] = {"url": _shown(url), "queues": lengths}
        limit = number(target.config, "queue_length_limit", None, minimum=0)
        long = {queue: n for queue, n in lengths.items() if limit is not None and n > limit}
        if long:
            return CheckResult(
                Status.DEGRADED, latency_ms=latency, details=details,
                warnings=[f"queue {queue} holds {n} tasks (limit {limit:g})"
                          for queue, n in long.items()],
            )  # fmt: skip
        return CheckResult(Status.HEALTHY, latency_ms=latency, details=details)

    def _connect_only(self, url: str, target: Target) -> CheckResult:
        started = time.perf_counter()
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        try:
            with Connection(url, connect_timeout=target.timeout, transport_options=options) as conn:
                conn.ensure_connection(max_retries=1, timeout=max(1, round(target.timeout)))
        except Exception as exc:  # kombu raises transport-specific errors
            return CheckResult.failed(Status.CRITICAL, f"broker: {type(exc).__name__}: {exc}"[:300])
        return CheckResult(Status.HEALTHY, latency_ms=elapsed_ms(started, time.perf_counter()))


def _shown(url: str) -> str:
    """The URL without its password, for reports anyone with admin access reads."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
