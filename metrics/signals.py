"""The signals of "alive but not trading": what each is made of, and its defaults.

A bot can keep sending heartbeats while it has stopped deciding, ordering or receiving
market data. Each of these is a signal of its own, watched per source (an
`Expectation`, or these defaults) and only once the source has reported it:

* decision: the newest `decision` event;
* order: the newest `order_submitted` event or trade;
* market data: the newest `market_data` event, or the tick a `market_data_age_ms`
  sample speaks of (its time less its age);
* order rejects: `order_rejected` events over submitted orders in a window (rejected
  orders were submitted too: over the larger of the two counts).

Pure: plain values in and out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

DECISION: Final = "decision"
ORDER: Final = "order"
MARKET_DATA: Final = "market_data"
ORDER_REJECTS: Final = "order_rejects"
SIGNALS: Final = (DECISION, ORDER, MARKET_DATA, ORDER_REJECTS)
# The signals whose silence is timed (the reject rate is a ratio, not a silence).
SILENCES: Final = (DECISION, ORDER, MARKET_DATA)

DECISION_EVENT: Final = "decision"
ORDER_SUBMITTED_EVENT: Final = "order_submitted"
ORDER_REJECTED_EVENT: Final = "order_rejected"
MARKET_DATA_EVENT: Final = "market_data"
MARKET_DATA_AGE_METRIC: Final = "market_data_age_ms"

#: signal -> event types that show it
EVENT_TYPES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        DECISION: (DECISION_EVENT,),
        ORDER: (ORDER_SUBMITTED_EVENT,),
        MARKET_DATA: (MARKET_DATA_EVENT,),
        ORDER_REJECTS: (ORDER_SUBMITTED_EVENT, ORDER_REJECTED_EVENT),
    }
)

#: signal -> the silence allowed (the window, for order rejects) without an expectation
DEFAULT_GRACE: Final[Mapping[str, timedelta]] = MappingProxyType(
    {
        DECISION: timedelta(minutes=30),
        ORDER: timedelta(hours=1),
        MARKET_DATA: timedelta(minutes=5),
        ORDER_REJECTS: timedelta(minutes=15),
    }
)

#: signal -> how an operator says it ("no order for 42 min")
NOUNS: Final[Mapping[str, str]] = MappingProxyType(
    {DECISION: "decision", ORDER: "order", MARKET_DATA: "market data", ORDER_REJECTS: "reject"}
)

# The metric names the trading pack's rules give these signals (`alerts.loading`).
RULE_PREFIX: Final = "signal:"
REJECT_RATE: Final = "order_reject_rate"


def rule_metric(signal: str) -> str:
    """The metric a rule watching `signal` names: signal:decision ... signal:order_reject_rate."""
    return f"{RULE_PREFIX}{REJECT_RATE if signal == ORDER_REJECTS else signal}"


def signal_of_metric(metric: str) -> str | None:
    """The signal a rule's metric names (None: not a signal)."""
    if not metric.startswith(RULE_PREFIX):
        return None
    name = metric.removeprefix(RULE_PREFIX)
    if name == REJECT_RATE:
        return ORDER_REJECTS
    return name if name in SILENCES else None


def newest_seen(
    signal: str,
    *,
    events: Mapping[str, datetime],
    trade: datetime | None = None,
    ticks: Iterable[datetime] = (),
) -> datetime | None:
    """When `signal` (decision, order, market data) was last seen: from the newest event
    of each type (`events`), the newest trade, and the ticks `market_data_age_ms`
    samples speak of (`market_data_tick`). None: never."""
    seen: list[datetime | None] = [events.get(kind) for kind in EVENT_TYPES[signal]]
    if signal == ORDER:
        seen.append(trade)
    elif signal == MARKET_DATA:
        seen += list(ticks)
    return max((moment for moment in seen if moment is not None), default=None)


def market_data_tick(sample_ts: datetime, age_ms: float) -> datetime:
    """When the tick a `market_data_age_ms` sample speaks of arrived (never after it)."""
    return sample_ts - timedelta(milliseconds=max(0.0, age_ms))


def reject_rate(rejected: int, submitted: int) -> tuple[float | None, int]:
    """(reject rate in %, orders it is over); None without any order."""
    orders = max(rejected, submitted)
    if orders <= 0:
        return None, 0
    return rejected / orders * 100.0, orders
