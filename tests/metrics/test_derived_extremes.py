"""Which points of the derived metrics are stored and which reach evaluation (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from metrics.derived_extremes import Envelope, Extremes
from metrics.ledger import from_micros, micros

HOUR = timedelta(hours=1) // timedelta(microseconds=1)
T0 = micros(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))  # on the hour


def at(seconds: int) -> int:
    return T0 + seconds * 1_000_000


def stored(envelope: Envelope) -> list[tuple[str, int, float]]:
    return [(row.name, micros(row.ts), row.value) for row in envelope.rows]


def envelope(**kept: float) -> Envelope:
    return Envelope(dict(kept), everything=False, reported="equity", period=HOUR)


def test_it_stores_a_metrics_lowest_highest_and_newest_point_of_the_hour() -> None:
    kept = envelope()
    for seconds, value in ((1, 5.0), (2, 2.0), (3, 9.0), (4, 6.0)):
        kept.add(at(seconds), {"drawdown_pct": value})

    kept.flush()

    assert sorted(stored(kept), key=lambda row: row[1]) == [
        ("drawdown_pct", at(2), 2.0),
        ("drawdown_pct", at(3), 9.0),
        ("drawdown_pct", at(4), 6.0),
    ]
    assert kept.stored == {"drawdown_pct": 6.0}


def test_it_stores_nothing_for_a_metric_that_did_not_move_since_it_was_stored() -> None:
    kept = envelope(win_rate_pct=50.0)
    kept.add(at(1), {"win_rate_pct": 50.0})
    kept.add(at(2), {"win_rate_pct": 50.0})

    kept.flush()

    assert stored(kept) == []


def test_it_stores_a_value_that_moved_away_and_back_within_the_batch() -> None:
    kept = envelope(drawdown_pct=3.0)
    kept.add(at(1), {"drawdown_pct": 12.0})
    kept.add(at(2), {"drawdown_pct": 3.0})

    kept.flush()

    assert sorted(stored(kept), key=lambda row: row[1]) == [
        ("drawdown_pct", at(1), 12.0),
        ("drawdown_pct", at(2), 3.0),
    ]


def test_it_never_stores_the_metric_the_source_reports_itself() -> None:
    kept = envelope()
    kept.add(at(1), {"equity": 1000.0, "drawdown_pct": 0.0})
    kept.add(at(2), {"equity": 900.0, "drawdown_pct": 10.0})

    kept.flush()

    assert {name for name, _, _ in stored(kept)} == {"drawdown_pct"}


def test_an_hour_ending_stores_every_metrics_value_at_its_last_input() -> None:
    kept = envelope(win_rate_pct=50.0)
    kept.add(at(10), {"win_rate_pct": 50.0})
    kept.add(at(3600 + 10), {"win_rate_pct": 50.0})  # the next hour

    # The first hour's row, though the value did not change: a row an hour.
    assert stored(kept) == [("win_rate_pct", at(10), 50.0)]


def test_the_extremes_are_the_new_inputs_lowest_and_highest_beyond_the_final_value() -> None:
    extremes = Extremes()
    for seconds, value in ((1, 4.0), (2, 21.0), (3, 1.0), (4, 8.0)):
        extremes.add(at(seconds), {"drawdown_pct": value, "trade_count": float(seconds)})

    found = extremes.beyond({"drawdown_pct": 8.0, "trade_count": 4.0})

    assert found == {
        "drawdown_pct": [(from_micros(at(2)), 21.0), (from_micros(at(3)), 1.0)],
        "trade_count": [(from_micros(at(1)), 1.0)],
    }
