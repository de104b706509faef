"""HTTP endpoint: expected status, optional text in the body, optional latency limit."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from health.scoring import Status

from .base import CheckResult, Probe, Target, config_error, elapsed_ms, number, text

USER_AGENT = "Tradewatch/1 (+health checks)"
# Enough of a page to find the expected text in; more would only cost memory.
_BODY_READ_BYTES = 256 * 1024
METHODS = ("GET", "HEAD", "POST")


def _expected_statuses(config: dict[str, Any]) -> list[int]:
    value = config.get("expected_status", 200)
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in values
    ):
        raise config_error("expected_status", f"an HTTP status or a list of them, got {value!r}")
    return values


class HttpProbe(Probe):
    """CRITICAL when unreachable, UNHEALTHY on a wrong status or missing text, DEGRADED
    when slower than `latency_limit_ms`.

    Config: `url` (http or https), `method` (GET), `expected_status` (200, or a list),
    `body_contains` (text the answer must hold), `latency_limit_ms`, `headers`.
    Redirects are not followed: the status they answer is what is compared.
    """

    kind = "http"

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        url = text(config, "url")
        if not url or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise config_error("url", "an http:// or https:// URL is required")
        if (text(config, "method", "GET") or "GET").upper() not in METHODS:
            raise config_error("method", f"one of {', '.join(METHODS)}")
        _expected_statuses(config)
        text(config, "body_contains")
        number(config, "latency_limit_ms", None, minimum=1)
        headers = config.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise config_error("headers", "an object of text values")

    def run(self, target: Target, now: datetime) -> CheckResult:
        config = target.config
        url = str(config["url"])
        expected = _expected_statuses(config)
        wanted_text = text(config, "body_contains")
        limit = number(config, "latency_limit_ms", None, minimum=1)
        method = (text(config, "method", "GET") or "GET").upper()
        headers = {"User-Agent": USER_AGENT, **config.get("headers", {})}
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange: connect, answer and body together.
            with (
                httpx.Client(
                    timeout=target.timeout, follow_redirects=False, trust_env=False
                ) as client,
                client.stream(method, url, headers=headers) as response,
            ):
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= _BODY_READ_BYTES:
                        break
                    if time.perf_counter() - started > target.timeout:
                        raise httpx.ReadTimeout("the answer took too long")
        except httpx.TimeoutException:
            return CheckResult(
                Status.CRITICAL,
                latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"no answer from {url} within {target.timeout:g} s"],
                details={"url": url},
            )
        except httpx.HTTPError as exc:
            return CheckResult(
                Status.CRITICAL,
                latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"{url} unreachable: {type(exc).__name__}: {exc}"[:300]],
                details={"url": url},
            )
        latency = elapsed_ms(started, time.perf_counter())
        details = {"url": url, "status_code": response.status_code, "expected": expected}
        if response.status_code not in expected:
            return CheckResult(
                Status.UNHEALTHY,
                latency_ms=latency,
                issues=[
                    f"{url} answered {response.status_code}, expected "
                    f"{' or '.join(str(s) for s in expected)}"
                ],
                details={**details, "answer": body[:200].decode("utf-8", "replace")},
            )
        if wanted_text and wanted_text not in body.decode(response.encoding or "utf-8", "replace"):
            return CheckResult(
                Status.UNHEALTHY, latency_ms=latency,
                issues=[f"{url} answered without {wanted_text!r}"], details=details,
            )  # fmt: skip
        if limit is not None and latency > limit:
            # Slower than wanted, yet up: a score between the buckets' edges.
            over = min(1.0, (latency - limit) / limit)
            return CheckResult(
                Status.DEGRADED, latency_ms=latency,
                warnings=[f"{url} answered in {latency:.0f} ms (limit {limit:.0f} ms)"],
                details=details, score=round(79 - 19 * over),
            )  # fmt: skip
        return CheckResult(Status.HEALTHY, latency_ms=latency, details=details)
