"""How a source's metric is named and described at `/metrics`: Prometheus' conventions.

Tradewatch's metric names (`trade_count`, `exchange_latency_ms`) stay what the API,
the rules and the admin know; only their Prometheus families follow Prometheus'
conventions, so `promtool check metrics` has nothing to say about the trading pack's
metrics. The mapping is fixed (dashboards and alert rules depend on it), applied to
the family's name in this order:

1. `tradewatch_metric_` + the metric name, `.` and `:` (and anything else Prometheus
   does not allow) turned into `_`.
2. A time unit as the last word becomes seconds, Prometheus' base unit, and the value
   is converted: `_ms`, `_milliseconds` (÷ 1,000), `_us`, `_microseconds` (÷ 10⁶),
   `_ns`, `_nanoseconds` (÷ 10⁹), `_s`, `_sec`, `_secs` (as is), `_minutes` (x 60),
   `_hours` (x 3,600), `_days` (x 86,400), `_weeks` (x 604,800). So `exchange_latency_ms`
   = 120 is `tradewatch_metric_exchange_latency_seconds` = 0.12. Not after `_per` (a
   rate: the unit divides, `orders_per_s` stays as sent).
3. A gauge must not end in a suffix Prometheus gives other types' series (`_total` of a
   counter, `_count`, `_sum`, `_bucket` of a histogram or summary, `_created`, `_info`
   in OpenMetrics): `_value` is appended. So `trade_count` is
   `tradewatch_metric_trade_count_value`, and a source's `orders_total` is
   `tradewatch_metric_orders_total_value`.

Anything else is kept as sent, even where promtool's lint would frown (a camelCase
name, `_kb`, `_h` or another ambiguous unit abbreviation, a type name such as
`_gauge`). Two metrics that end up in the same family with the same labels (`a.b` and
`a:b`, `latency_ms` and `latency_seconds`) are one series: the newest value wins.

HELP says what each family is and which Tradewatch metric it shows: derived by
Tradewatch (`metrics.trading.METRICS`), reported by the source (`metrics.reported`),
or, for any other name, the latest value a source sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final

from .reported import REPORTED_METRICS
from .trading import METRICS as TRADING_METRICS

METRIC_PREFIX: Final = "tradewatch_metric_"

# What may not appear in the names we export, metric or label.
INVALID_CHARS: Final = re.compile(r"[^A-Za-z0-9_]")

# A last word naming a time unit -> (its name, how many seconds one of it is).
TIME_UNITS: Final[Mapping[str, tuple[str, float]]] = MappingProxyType(
    {
        "ns": ("nanoseconds", 1e-9),
        "nanoseconds": ("nanoseconds", 1e-9),
        "us": ("microseconds", 1e-6),
        "microseconds": ("microseconds", 1e-6),
        "ms": ("milliseconds", 1e-3),
        "milliseconds": ("milliseconds", 1e-3),
        "s": ("seconds", 1.0),
        "sec": ("seconds", 1.0),
        "secs": ("seconds", 1.0),
        "minutes": ("minutes", 60.0),
        "hours": ("hours", 3600.0),
        "days": ("days", 86400.0),
        "weeks": ("weeks", 604800.0),
    }
)
# Endings of other metric types' series, never of a gauge's name.
RESERVED_SUFFIXES: Final = ("_total", "_count", "_sum", "_bucket", "_created", "_info")
RESERVED_SUFFIX_ESCAPE: Final = "_value"

#: The derived trading metrics: every metric of `trading.METRICS` no source reports.
DERIVED_METRICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        name: meaning.partition("(): ")[2]  # "function(): meaning"; the function is ours
        for name, meaning in TRADING_METRICS.items()
        if name not in REPORTED_METRICS
    }
)


@dataclass(frozen=True)
class Exposed:
    """A metric as `/metrics` shows it: its family, and what its values are multiplied by."""

    family: str
    scale: float = 1.0
    # The time unit the source sent, when the values are converted to seconds.
    sent_in: str = ""


# A scrape asks for the same few names once per series: computed once per name.
@lru_cache(maxsize=4096)
def exposed(metric_name: str) -> Exposed:
    """The Prometheus family of a source metric, and its unit conversion (see above)."""
    family = METRIC_PREFIX + INVALID_CHARS.sub("_", metric_name)
    scale, sent_in = 1.0, ""
    head, _, last = family.rpartition("_")
    unit = TIME_UNITS.get(last)
    if unit is not None and not head.endswith("_per"):
        family = head + "_seconds"
        sent_in, scale = unit
    if family.endswith(RESERVED_SUFFIXES):
        family += RESERVED_SUFFIX_ESCAPE
    return Exposed(family, scale, "" if sent_in == "seconds" else sent_in)


def family_name(metric_name: str) -> str:
    """The Prometheus family of a source metric: `tradewatch_metric_<name>`, adjusted."""
    return exposed(metric_name).family


def documentation(metric_name: str) -> str:
    """The HELP of a source metric's family: derived or reported, and by which name."""
    converted = exposed(metric_name).sent_in
    in_seconds = ", in seconds" if converted else ""
    known_as = f"Tradewatch metric {metric_name!r}" + (
        f", sent in {converted}" if converted else ""
    )
    if metric_name in DERIVED_METRICS:
        return (
            "Derived by Tradewatch from the source's trades and equity: "
            f"{DERIVED_METRICS[metric_name]}. Latest per source ({known_as})."
        )
    if metric_name in REPORTED_METRICS:
        return (
            f"Reported by the source: {REPORTED_METRICS[metric_name]}{in_seconds}. "
            f"Latest per source and labels ({known_as})."
        )
    return f"Latest value of each source's series{in_seconds} ({known_as})."
