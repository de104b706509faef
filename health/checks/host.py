"""Host resources: CPU, memory and disk usage against per-resource limits (psutil)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import psutil

from health.scoring import Status

from .base import CheckResult, Probe, Target, config_error, elapsed_ms, number, text

DEFAULT_LIMIT_PCT = 90.0
RESOURCES = ("cpu", "memory", "disk")


class HostProbe(Probe):
    """DEGRADED when a resource is past its limit (90 % each by default).

    Config: `cpu_pct`, `memory_pct`, `disk_pct` (limits, 0-100), `path` (the disk, /).
    This is the host the worker runs on.
    """

    kind = "host"

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        for resource in RESOURCES:
            limit = number(config, f"{resource}_pct", DEFAULT_LIMIT_PCT, minimum=0)
            if limit is not None and limit > 100:
                raise config_error(f"{resource}_pct", "a percentage, at most 100")
        text(config, "path", "/")

    def run(self, target: Target, now: datetime) -> CheckResult:
        started = time.perf_counter()
        path = text(target.config, "path", "/") or "/"
        try:
            # Sampled over a short interval: a single call without one has no baseline.
            usage = {
                "cpu": psutil.cpu_percent(interval=min(0.5, target.timeout / 4)),
                "memory": psutil.virtual_memory().percent,
                "disk": psutil.disk_usage(path).percent,
            }
        except OSError as exc:
            return CheckResult.failed(Status.UNHEALTHY, f"cannot read host usage: {exc}")
        warnings = []
        for resource in RESOURCES:
            limit = number(target.config, f"{resource}_pct", DEFAULT_LIMIT_PCT, minimum=0)
            if limit is not None and usage[resource] > limit:
                where = f" of {path}" if resource == "disk" else ""
                warnings.append(f"{resource} at {usage[resource]:.1f} %{where} (limit {limit:g} %)")
        details = {f"{resource}_pct": usage[resource] for resource in RESOURCES}
        latency = elapsed_ms(started, time.perf_counter())
        if warnings:
            return CheckResult(
                Status.DEGRADED, latency_ms=latency, warnings=warnings, details=details
            )
        return CheckResult(Status.HEALTHY, latency_ms=latency, details=details)
