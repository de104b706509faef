"""The live event stream's store: changes people watch, kept a while for replay.

Alert changes (every timeline entry), health check status changes and trading state
changes are appended, once their transaction commits, to one Redis stream in the
cache's Redis (`XADD ... MAXLEN ~ N`). The web front (`monitoring_site.event_stream`)
reads it (`XREAD BLOCK`) and sends each entry to the `GET /api/v1/stream` clients that
may see it; a client that reconnects with `Last-Event-ID` is sent what it missed from
the same stream (`XRANGE`), or told to start afresh when that was trimmed away.

Why a Redis stream rather than a PostgreSQL table with LISTEN/NOTIFY: its ids are
handed out in the order entries are appended, after the commit, so "everything after
id X" can never skip a row that a slower transaction commits later (a sequence's ids
can); it is bounded by itself (MAXLEN), with no pruning job; one blocking read wakes
the front at once, which a PostgreSQL table would need NOTIFY beside it for. What it
gives up is durability: the entries are a replay buffer for a few minutes of
disconnection, not a record (the timeline, health reports and the controls' history
are the record), so losing them (a Redis restart without persistence, a cache clear)
costs each client one `reset` event, after which it reads the current state again.

Without Redis (the embedded mode) nothing is stored, and the stream is unavailable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from .redis_cache import cache_key, redis_cache_client

logger = logging.getLogger(__name__)

STREAM_KEY: Final = "event-stream"

# The kinds of event, as the stream names them (the SSE `event:` field).
ALERT: Final = "alert"
HEALTH: Final = "health"
TRADING_STATE: Final = "trading_state"
KINDS: Final = (ALERT, HEALTH, TRADING_STATE)


@dataclass(frozen=True)
class Event:
    """One change, as published: its kind, the source it concerns (None: Tradewatch
    itself) and its data (JSON-ready: datetimes become ISO 8601)."""

    kind: str
    source_id: int | None
    data: Mapping[str, Any]

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "kind": self.kind,
            "source": "" if self.source_id is None else str(self.source_id),
            "data": json.dumps(self.data, cls=DjangoJSONEncoder, separators=(",", ":")),
        }


def stream_key() -> str:
    """The Redis key of the stream (the cache's prefix and version added)."""
    return cache_key(STREAM_KEY)


def events_available() -> bool:
    """Whether events are stored (the default cache is Redis)."""
    return redis_cache_client() is not None


def events_publish(events: Sequence[Event]) -> None:
    """Append `events` to the stream once the current transaction commits (now if none).

    Robust: the change is saved by then, and a stream that cannot be written to costs
    its clients these events (they are told to reset when they reconnect), never the
    change itself.
    """
    if events:
        transaction.on_commit(EventsAppend(list(events)), robust=True)


def event_publish(kind: str, data: Mapping[str, Any], *, source_id: int | None) -> None:
    """`events_publish` for one event."""
    events_publish([Event(kind, source_id, data)])


@dataclass(frozen=True)
class EventsAppend:
    """The on-commit step appending one transaction's events (named: a test counting what
    a transaction queues tells it apart from the rest)."""

    events: list[Event]

    def __call__(self) -> None:
        try:
            client = redis_cache_client()
            if client is None:
                return
            key = stream_key()
            limit = int(settings.TRADEWATCH_STREAM_REPLAY_EVENTS)
            with client.pipeline(transaction=False) as pipe:
                for event in self.events:
                    # `~`: Redis trims whole nodes at a time, keeping at least `limit` entries.
                    pipe.xadd(key, event.fields(), maxlen=limit, approximate=True)
                pipe.execute()
        except Exception as exc:  # the change is saved; its clients will be told to reset
            logger.warning("%d events not appended to the event stream (%s)", len(self.events), exc)
