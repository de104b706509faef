"""Which points of the derived trading metrics are stored, and which reach evaluation.

Pure: no Django, no I/O. `metrics.derived` folds a source's inputs one at a time and
hands each input's derived values here, at the input's time (integer microseconds since
the epoch): `Envelope` keeps, per metric and hour, the lowest, highest and newest point,
and says which rows to store; `Extremes` keeps the lowest and highest point among the
inputs of the batches that asked for a derivation, for evaluation to judge.
"""

from __future__ import annotations

from datetime import datetime

from .ledger import from_micros
from .validation import EMPTY_LABELS_KEY, Sample

# A point of a derived metric: (time in microseconds, value).
Point = tuple[int, float]


class Envelope:
    """Per metric, per hour: the lowest, highest and newest point; what is stored.

    A metric's newest value is stored when it changed since it was last stored (`stored`,
    kept in the ledger) or moved away and back within the batch, and every metric's value
    at the last input of each hour: so a quiet metric costs a row an hour while inputs
    keep coming, not one per batch.
    """

    def __init__(
        self, stored: dict[str, float], *, everything: bool, reported: str, period: int
    ) -> None:
        # Points are kept per hour: `period` microseconds, the checkpoints' period.
        self.period = period
        self.hour: int | None = None
        self.points: dict[str, list[Point]] = {}
        self.rows: list[Sample] = []
        self.stored = stored
        # After a restart every newest value is stored again: what was stored after the
        # checkpoint is gone.
        self.everything = everything
        # The metric the source reports itself (equity): storing it again would echo it.
        self.reported = reported

    def add(self, at: int, values: dict[str, float]) -> None:
        hour = at // self.period
        if hour != self.hour:
            # The hour before ended with every metric added (see `_Fold.run` in `metrics.derived`).
            self.flush(everything=self.hour is not None)
            self.hour = hour
        points = self.points
        for name, value in values.items():
            kept = points.get(name)
            if kept is None:
                points[name] = [(at, value), (at, value), (at, value)]
                continue
            if value < kept[0][1]:
                kept[0] = (at, value)
            if value > kept[1][1]:
                kept[1] = (at, value)
            kept[2] = (at, value)

    def flush(self, *, everything: bool = False) -> None:
        stored = self.stored
        for name, (low, high, last) in self.points.items():
            if name == self.reported:
                continue
            # One value per instant: inputs of one instant leave the metric at `last`.
            rows = {at: value for at, value in (low, high) if value != last[1]}
            if rows or everything or self.everything or stored.get(name) != last[1]:
                rows[last[0]] = last[1]
                stored[name] = last[1]
            for at, value in rows.items():
                self.rows.append(Sample(name, {}, EMPTY_LABELS_KEY, from_micros(at), value))
        self.points = {}


class Extremes:
    """Per metric: the lowest and highest point among new inputs."""

    def __init__(self) -> None:
        self.points: dict[str, list[Point]] = {}

    def add(self, at: int, values: dict[str, float]) -> None:
        points = self.points
        for name, value in values.items():
            kept = points.get(name)
            if kept is None:
                points[name] = [(at, value), (at, value)]
            elif value < kept[0][1]:
                kept[0] = (at, value)
            elif value > kept[1][1]:
                kept[1] = (at, value)

    def beyond(self, final: dict[str, float]) -> dict[str, list[tuple[datetime, float]]]:
        """The extremes that differ from the final values, oldest first."""
        found: dict[str, list[tuple[datetime, float]]] = {}
        for name, pair in self.points.items():
            now = final.get(name)
            beyond = sorted({p for p in pair if now is None or p[1] != now})
            if beyond:
                found[name] = [(from_micros(at), value) for at, value in beyond]
        return found
