"""The ledger folded one input at a time equals the whole-history definitions.

`metrics.trading.derive_metrics` states each metric over a whole history; the ledger
must give the same at every input, however the fold is cut into batches and kept as
JSON between them. (The stored values are checked against pandas and empyrical in
test_derived_oracle.py; this runs thousands of histories without a database.)
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import trading
from metrics.ledger import Ledger, RecentTrades, micros

START = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)  # a Sunday evening: a week turns over
NOT_FOLDED = {"sharpe_ratio", "sortino_ratio"}  # sampled from checkpoints, not folded

gaps = st.sampled_from(
    [timedelta(0), timedelta(milliseconds=3), timedelta(seconds=1), timedelta(minutes=4),
     timedelta(minutes=61), timedelta(hours=7)]
)  # fmt: skip


class Fill(NamedTuple):
    symbol: str
    side: trading.Side
    quantity: float
    price: float
    pnl: float | None
    fee: float


fills = st.builds(
    Fill,
    st.sampled_from(["BTC", "ETH"]),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from([0.1, 0.2, 0.3, 1.0]),
    st.floats(1, 1e5),
    st.none() | st.floats(-1e3, 1e3),
    st.sampled_from([0.0, 0.1, -0.05]),
)
inputs = st.lists(st.tuples(gaps, st.floats(-50.0, 1e6) | fills), min_size=1, max_size=40)

Item = tuple[datetime, float | trading.Trade]


def timeline(drawn: list[tuple[timedelta, float | Fill]]) -> list[Item]:
    """Inputs in fold order: time, fills before equity of an instant, then as drawn."""
    ts = START
    items: list[Item] = []
    for gap, item in drawn:
        ts += gap
        if isinstance(item, Fill):
            items.append((ts, trading.Trade(ts=ts, **item._asdict())))
        else:
            items.append((ts, item))
    return sorted(items, key=lambda pair: (pair[0], not isinstance(pair[1], trading.Trade)))


def fold(ledger: Ledger, recent: RecentTrades, items: list[Item]) -> None:
    for ts, item in items:
        if isinstance(item, trading.Trade):
            ledger.add_trade(micros(ts), item)
            recent.add(micros(ts))
        else:
            ledger.add_equity(micros(ts), item)


def close(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-12, abs_tol=1e-9) for k in a
    )


@settings(max_examples=1500)
@given(drawn=inputs, cut=st.integers(0, 40))
def test_it_folds_to_the_whole_history_definitions_however_it_is_cut(
    drawn: list[tuple[timedelta, float | Fill]], cut: int
) -> None:
    items = timeline(drawn)
    ledger, recent = Ledger(), RecentTrades()
    fold(ledger, recent, items[:cut])
    # Kept between batches as JSON (the database's jsonb), and taken up again.
    ledger = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    fold(ledger, recent, items[cut:])

    now = items[-1][0]
    expected = trading.derive_metrics(
        trades=[item for _, item in items if isinstance(item, trading.Trade)],
        equity_points=[
            trading.EquityPoint(ts=ts, equity=item)
            for ts, item in items
            if not isinstance(item, trading.Trade)
        ],
        now=now,
    )
    got = ledger.values(now, recent.count_at(micros(now)))
    assert close(got, {k: v for k, v in expected.items() if k not in NOT_FOLDED})
