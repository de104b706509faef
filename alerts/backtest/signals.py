"""The "alive but not trading" signals over a period, as the live engine reads them.

At each evaluation `alerts.loading` reads when each signal a rule watches was last seen
(the newest event of its types; for orders the newest trade too; for market data the
tick the newest `market_data_age_ms` sample of each series speaks of), and
`judging.subjects` judges the seconds past the source's grace for it, counted from its
schedule's opening at the earliest, or the order reject rate over the expectation's
window. Here the same comes from the stored events, trades and samples, per instant,
through the same functions of `metrics.signals`. A source that never reported a signal
has no data for it, so a rule on it stays silent (the trading pack's rules keep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from alerts import engine
from alerts.judging import Subject
from metrics import signals
from metrics.models import MetricSeries
from metrics.schedules import ExpectationSpec

from . import data as stored
from .clocks import NEVER, Age, Mask, at_or_before, maybe
from .data import Floats, Micros, moment
from .windows import SeriesJudge, Windows

# How far a tick computed here may be off the live one (rounding its age to whole µs).
TICK_SLACK: Final = 2e-6
NO_TRADES: Final = np.zeros(0, dtype=np.int64)


@dataclass
class SignalHistory:
    """What one source reported of one signal: the events of its types (with the newest
    before the period), its trades (orders), its `market_data_age_ms` samples (market
    data: each series' times and ages, with the newest before the period)."""

    signal: str
    events: stored.EventStamps
    trades: Micros
    ages: list[tuple[Micros, Floats]] = field(default_factory=list)
    samples: int = 0

    def stamps(self) -> Micros:
        """Every moment the source reported the signal (the chart counts them)."""
        parts = [self.events.get(kind) for kind in signals.EVENT_TYPES[self.signal]]
        if self.signal == signals.ORDER_REJECTS:
            parts = [self.events.get(signals.ORDER_REJECTED_EVENT)]
        return stored.instants_merge(self.trades, *parts, *(ts for ts, _ in self.ages))


def signal_history(
    source_id: int, signal: str, start: datetime, end: datetime, *, window: timedelta
) -> SignalHistory:
    """What the source reported of `signal` by `end`; `window`: the reject rate's."""
    types = signals.EVENT_TYPES[signal]
    if signal == signals.ORDER_REJECTS:
        events = stored.events_read(source_id, types, start - window, end)
        return SignalHistory(signal, events, NO_TRADES)
    history = SignalHistory(
        signal,
        stored.events_read(source_id, types, start, end),
        stored.trades_read(source_id, start, end) if signal == signals.ORDER else NO_TRADES,
    )
    if signal == signals.MARKET_DATA:
        for series_id in MetricSeries.objects.filter(
            source_id=source_id, name=signals.MARKET_DATA_AGE_METRIC
        ).values_list("pk", flat=True):
            ts, ages = stored.samples_read(series_id, start, end)
            history.samples += len(ts)
            older = stored.newest_before(series_id, start)
            if older is not None:
                ts = np.concatenate(([older[0]], ts)).astype(np.int64)
                ages = np.concatenate(([older[1]], ages))
            history.ages.append((ts, ages))
    return history


def signal_judge(
    history: SignalHistory,
    windows: Windows,
    *,
    opened: Micros | None,
    expectation: ExpectationSpec,
    min_samples: int,
) -> SeriesJudge:
    """How a rule on the signal judges the source at each instant of `windows`."""
    if history.signal == signals.ORDER_REJECTS:
        return RejectRate(
            windows, history, window=expectation.grace, opened=opened, min_samples=min_samples
        )
    return _silence(history, windows, opened=opened, grace=expectation.grace)


def _silence(
    history: SignalHistory, windows: Windows, *, opened: Micros | None, grace: timedelta
) -> Age:
    """Seconds past the grace since the signal was last seen (`judging.subjects`)."""
    times = windows.times
    signal = history.signal
    newest = {kind: at_or_before(history.events.get(kind), times) for kind in
              signals.EVENT_TYPES[signal]}  # fmt: skip
    trade = at_or_before(history.trades, times) if signal == signals.ORDER else None
    # Per age series: which of its samples is the newest at each instant (-1: none yet).
    newest_age = [np.searchsorted(ts, times, side="right") - 1 for ts, _ in history.ages]
    seen = np.full(len(times), NEVER, dtype=np.int64)
    for part in [*newest.values(), *([] if trade is None else [trade])]:
        np.maximum(seen, part, out=seen)
    for (ts, ages), index in zip(history.ages, newest_age, strict=True):
        if not len(ts):
            continue
        at = np.maximum(index, 0)
        # `signals.market_data_tick`: the sample's time less its age (never after it).
        tick = ts[at] - np.rint(np.maximum(ages[at], 0.0) * 1000.0).astype(np.int64)
        np.maximum(seen, np.where(index >= 0, tick, NEVER), out=seen)
    seen = np.where(seen != NEVER, np.minimum(seen, times), NEVER)

    def newest_at(index: int) -> datetime | None:
        """When the live engine reads the signal was last seen (`alerts.loading`)."""
        now = moment(int(times[index]))
        ticks = [
            signals.market_data_tick(moment(int(ts[k])), float(ages[k]))
            for (ts, ages), at in zip(history.ages, newest_age, strict=True)
            if (k := int(at[index])) >= 0
        ]
        found = signals.newest_seen(
            signal,
            events={
                kind: last
                for kind, stamps in newest.items()
                if (last := maybe(int(stamps[index]))) is not None
            },
            trade=None if trade is None else maybe(int(trade[index])),
            ticks=ticks,
        )
        return None if found is None else min(found, now)

    return Age(
        windows, newest=seen, newest_at=newest_at, opened=opened, due_after=grace,
        slack=TICK_SLACK if history.ages else 0.0,
    )  # fmt: skip


class RejectRate(SeriesJudge):
    """The order reject rate: `order_rejected` events over submitted orders in the
    expectation's window (from the schedule's opening at the earliest), judged from
    `min_samples` orders on, as `judging.subjects` judges it."""

    def __init__(
        self,
        windows: Windows,
        history: SignalHistory,
        *,
        window: timedelta,
        opened: Micros | None,
        min_samples: int,
    ) -> None:
        super().__init__(engine.RuleKind.THRESHOLD, windows, min_samples=min_samples)
        times = windows.times
        since = times - window // timedelta(microseconds=1)
        if opened is not None:
            since = np.where(opened != NEVER, np.maximum(since, opened), since)

        def counted(kind: str) -> Micros:
            stamps = history.events.get(kind)
            inside: Micros = np.searchsorted(stamps, times, side="right") - np.searchsorted(
                stamps, since, side="right"
            )
            return inside

        self.rejected = counted(signals.ORDER_REJECTED_EVENT)
        self.submitted = counted(signals.ORDER_SUBMITTED_EVENT)
        # Rejected orders were submitted too: over the larger count (`signals.reject_rate`).
        self.orders = np.maximum(self.rejected, self.submitted)

    def no_data(self) -> Mask:
        none: Mask = self.orders == 0
        return none

    def enough(self) -> Mask:
        found: Mask = self.orders >= max(1, self.min_samples)
        return found

    def _approx(self) -> tuple[Floats, Floats]:
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(
                self.orders > 0, self.rejected / np.maximum(self.orders, 1) * 100.0, np.nan
            )
        return rate, np.zeros(len(rate))

    def subject(self, index: int) -> Subject:
        return Subject(
            {}, "{}", [],
            signals.reject_rate(int(self.rejected[index]), int(self.submitted[index])),
        )  # fmt: skip
