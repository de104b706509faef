"""A rule's tiers: severities, comparisons and thresholds, checked as they are built.

Pure: no Django, no I/O. `alerts.engine` judges values against these; the models and the
admin store and edit them.

* `Comparison.holds(value, threshold)` is a plain float comparison (`==` and `!=`
  exact). A threshold *triggers* when its comparison holds against its value.
* A clear value (hysteresis, see `alerts.engine`) lies on the releasing side of its
  threshold (<= value for > / >=, >= value for < / <=), never on == / !=.
* Never NaN or +-inf: a threshold's values are checked (ValueError).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum
from types import MappingProxyType
from typing import Final, TypeVar


class Severity(IntEnum):
    """How bad an alert is; a larger number is worse."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50
    EMERGENCY = 60

    @property
    def label(self) -> str:
        """Return the lower-case name, e.g. "warning"."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Severity:
        """Return the severity named `label` (any case, surrounding spaces ignored)."""
        try:
            return cls[label.strip().upper()]
        except KeyError:
            known = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {label!r}; expected one of {known}") from None


class Comparison(StrEnum):
    """How a value is compared with a threshold."""

    GT = ">"
    GTE = ">="
    LT = "<"
    LTE = "<="
    EQ = "=="
    NE = "!="

    def holds(self, value: float, threshold: float) -> bool:
        """Return whether `value <self> threshold`."""
        return OPERATORS[self](value, threshold)


Operator = Callable[[float, float], bool]
OPERATORS: Final[Mapping[Comparison, Operator]] = MappingProxyType(
    {
        Comparison.GT: operator.gt,
        Comparison.GTE: operator.ge,
        Comparison.LT: operator.lt,
        Comparison.LTE: operator.le,
        Comparison.EQ: operator.eq,
        Comparison.NE: operator.ne,
    }
)
# The two directions a value can worsen in; == and != have none.
UPWARD: Final = frozenset({Comparison.GT, Comparison.GTE})
DOWNWARD: Final = frozenset({Comparison.LT, Comparison.LTE})

_E = TypeVar("_E", bound=Enum)


def enum_member(owner: str, enum: type[_E], value: object) -> _E:
    """Return `value` as a member of `enum`; a ValueError naming `owner` otherwise."""
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{owner}: {value!r} is not a {enum.__name__}") from None


def finite_number(owner: str, value: object) -> float:
    """Return `value` as a float (a Decimal from the database too), refusing NaN and inf."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{owner} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{owner} must be a finite number, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Threshold:
    """One tier of a rule: `value <comparison> self.value` is a breach at `severity`."""

    severity: Severity
    comparison: Comparison
    value: float
    clear_value: float | None = None

    def __post_init__(self) -> None:
        comparison = enum_member("Threshold.comparison", Comparison, self.comparison)
        object.__setattr__(self, "comparison", comparison)
        severity = enum_member("Threshold.severity", Severity, self.severity)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "value", finite_number("Threshold.value", self.value))
        if self.clear_value is None:
            return
        clear = finite_number("Threshold.clear_value", self.clear_value)
        object.__setattr__(self, "clear_value", clear)
        if comparison not in UPWARD and comparison not in DOWNWARD:
            raise ValueError(f"Threshold.clear_value is not allowed with {comparison.value}")
        if (clear > self.value) if comparison in UPWARD else (clear < self.value):
            side = "<=" if comparison in UPWARD else ">="
            raise ValueError(
                f"Threshold.clear_value {clear!r} must be {side} value {self.value!r} "
                f"for {comparison.value} (it releases the alert)"
            )

    def __str__(self) -> str:
        text = f"{self.severity.label} {self.comparison.value} {self.value:.15g}"
        return text if self.clear_value is None else f"{text} (clear {self.clear_value:.15g})"
