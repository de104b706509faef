"""TCP port: a connection opened (and closed) within the check's timeout."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import Any

from health.scoring import Status

from .base import CheckResult, Probe, Target, config_error, elapsed_ms, number, text


class TcpProbe(Probe):
    """CRITICAL when the port refuses or does not answer in time. Config: `host`, `port`."""

    kind = "tcp"

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        if not text(config, "host"):
            raise config_error("host", "a host name or address is required")
        port = number(config, "port", None, minimum=1)
        if port is None or port > 65535 or port != int(port):
            raise config_error("port", "a port number 1-65535 is required")
        number(config, "latency_limit_ms", None, minimum=1)

    def run(self, target: Target, now: datetime) -> CheckResult:
        host, port = str(target.config["host"]), int(target.config["port"])
        limit = number(target.config, "latency_limit_ms", None, minimum=1)
        where = f"{host}:{port}"
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=target.timeout):
                latency = elapsed_ms(started, time.perf_counter())
        except TimeoutError:
            return CheckResult(
                Status.CRITICAL, latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"{where}: no connection within {target.timeout:g} s"],
                details={"address": where},
            )  # fmt: skip
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return CheckResult(
                Status.CRITICAL, latency_ms=elapsed_ms(started, time.perf_counter()),
                issues=[f"{where}: {reason.lower()}"], details={"address": where},
            )  # fmt: skip
        if limit is not None and latency > limit:
            return CheckResult(
                Status.DEGRADED, latency_ms=latency,
                warnings=[f"{where} connected in {latency:.0f} ms (limit {limit:.0f} ms)"],
                details={"address": where},
            )  # fmt: skip
        return CheckResult(Status.HEALTHY, latency_ms=latency, details={"address": where})
