"""What every kind of check shares: the target it is given and the result it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from django.core.exceptions import ValidationError

from health.scoring import STATUS_SCORE, Status, clamp_score


@dataclass(frozen=True)
class Target:
    """One check as a probe sees it: plain values, safe to hand to another thread."""

    check_id: int
    name: str
    kind: str
    config: dict[str, Any]
    timeout: float
    source_id: int | None = None


@dataclass
class CheckResult:
    """What one probe found: a status, a score 0-100, latency, and why."""

    status: Status
    latency_ms: float | None = None
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    score: int | None = None

    def __post_init__(self) -> None:
        self.score = STATUS_SCORE[self.status] if self.score is None else clamp_score(self.score)

    @classmethod
    def failed(cls, status: Status, issue: str, **details: Any) -> CheckResult:
        """A result with one issue, e.g. `CheckResult.failed(CRITICAL, "connection refused")`."""
        return cls(status=status, issues=[issue], details=details)

    def summary(self) -> str:
        """One line for lists: the issues, else the warnings, else the status."""
        return "; ".join(self.issues or self.warnings)[:500] or self.status.label


class Probe:
    """One kind of check. Subclasses set `kind` and implement `run`.

    `uses_database`: the probe reads Tradewatch's own tables through Django, so the
    runner calls it on its own thread (Django connections are per thread); other
    probes run on worker threads, each bounded by its timeout.
    """

    kind: ClassVar[str]
    needs_source: ClassVar[bool] = False
    uses_database: ClassVar[bool] = False

    @classmethod
    def validate(cls, config: dict[str, Any]) -> None:
        """Raise ValidationError naming each wrong field of `config`."""

    def run(self, target: Target, now: datetime) -> CheckResult:
        raise NotImplementedError


def config_error(field_name: str, message: str) -> ValidationError:
    """A configuration error naming its field (`config.<field>`)."""
    return ValidationError({"config": f"{field_name}: {message}"})


def number(
    config: dict[str, Any], key: str, default: float | None, *, minimum: float = 0
) -> float | None:
    """The number under `key` (or `default`), refusing anything else or below `minimum`."""
    value = config.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise config_error(key, f"must be a number, got {value!r}")
    if value < minimum:
        raise config_error(key, f"must be at least {minimum:g}, got {value!r}")
    return float(value)


def text(config: dict[str, Any], key: str, default: str | None = None) -> str | None:
    """The text under `key` (or `default`), refusing anything that is not a string."""
    value = config.get(key, default)
    if value is not None and not isinstance(value, str):
        raise config_error(key, f"must be text, got {value!r}")
    return value


def elapsed_ms(started: float, ended: float) -> float:
    return round((ended - started) * 1000, 2)
