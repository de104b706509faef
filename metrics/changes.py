"""What metrics announces once a batch is stored: "this source changed".

Ingestion (and anything else that stores a source's data) calls `source_changed_on_commit`
inside its transaction; once the data is visible, each handler named in
settings.TRADEWATCH_SOURCE_CHANGED_HANDLERS receives a `SourceChange`. The alerts app's
`alerts.trigger.source_changed` is the one Tradewatch installs: it decides whether and
where the source is evaluated. Declared in settings, as netbox declares its events
pipeline, so that metrics builds on no upper app and the arrow is still written down in
one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceChange:
    """A source's new data is stored and visible."""

    source_id: int
    # The metric names of a batch of samples; None for trades, events and heartbeats
    # (what rules read of those is not a metric name).
    names: frozenset[str] | None = None
    # Trades or equity arrived: derived trading metrics are due before evaluation.
    derive: bool = False


class SourceChangeHandler(Protocol):
    def __call__(self, change: SourceChange, /) -> None: ...


_handlers: dict[tuple[str, ...], list[SourceChangeHandler]] = {}


def source_change_handlers() -> list[SourceChangeHandler]:
    """The handlers settings name, imported once per list of names."""
    paths = tuple(settings.TRADEWATCH_SOURCE_CHANGED_HANDLERS)
    handlers = _handlers.get(paths)
    if handlers is None:
        handlers = _handlers[paths] = [import_string(path) for path in paths]
    return handlers


def source_changed(change: SourceChange) -> None:
    """Tell every handler; one failing handler neither stops the others nor the caller
    (the data is stored: beat's evaluation of every source catches up)."""
    for handler in source_change_handlers():
        try:
            handler(change)
        except Exception:
            logger.exception("handling a change of source %s failed", change.source_id)


def source_changed_on_commit(
    source_id: int, *, names: Iterable[str] | None = None, derive: bool = False
) -> None:
    """Announce the change once the caller's transaction commits (at once outside one)."""
    change = SourceChange(
        source_id=source_id, names=None if names is None else frozenset(names), derive=derive
    )
    # Robust: the batch is stored by then, so it is answered 202 even if the cache or the
    # broker is away.
    transaction.on_commit(lambda: source_changed(change), robust=True)
