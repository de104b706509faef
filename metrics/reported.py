"""The metrics a trading system reports itself that Tradewatch reads by name.

The trading rule pack (`alerts.rulepacks.trading`) and the health score
(`health.selectors`) watch these (the pack's "alive but not trading" rules name their
signals `signal:...`, which are no metrics: `metrics.signals`); the derived trading
metrics (`metrics.trading.METRICS`, but `equity`) are computed by Tradewatch instead.
Kept here, with what each means, so `/metrics` can say which is which.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: name -> what the source reports under it.
REPORTED_METRICS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "equity": "account equity, in the account currency",
        "error_rate_pct": "errors per trading cycle, %",
        "cycles": "trading cycles the error rate covers",
        "consecutive_errors": "errors in a row",
        "open_positions": "open positions",
        "exchange_latency_ms": "exchange round-trip time",
        "rate_limit_remaining": "requests left in the exchange's rate-limit window",
        "host_cpu_pct": "host CPU usage, %",
        "host_memory_pct": "host memory usage, %",
        "host_disk_pct": "host disk usage, %",
        "market_data_age_ms": "age of the newest market-data tick the source has",
    }
)
