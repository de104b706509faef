"""The wire format: queued items become the JSON the ingestion API expects.

The calling thread only queues plain tuples (see `Client.record`); everything here runs
on the sender thread, so checks can be thorough without slowing the trading loop. An
item that would make the server refuse its whole batch (NaN, a string where a number
belongs, a timestamp without an offset) is caught here and dropped on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

# Item kinds: the first element of every queued tuple. Plain ints, not an Enum, because
# the calling thread builds one tuple per call and an attribute lookup costs time there.
METRIC: Final = 0
TRADE: Final = 1
HEARTBEAT: Final = 2
EVENT: Final = 3

# Queued shapes (ts is filled in by the calling thread when the caller gave none):
#   (METRIC, ts, name, value, labels)
#   (TRADE, ts, id, symbol, side, quantity, price, pnl, fee)
#   (HEARTBEAT, ts, status, info)
#   (EVENT, ts, type, message, context)
Item = tuple[object, ...]
Payload = dict[str, object]

TRADE_SIDES: Final = frozenset({"buy", "sell"})
# The server refuses a whole batch holding a trade whose pnl, fee, quantity, price or
# notional is beyond this magnitude; checked here too so that one such trade is dropped
# on its own instead of taking its batch with it.
MAX_TRADE_MAGNITUDE: Final = 1e15


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ingestion endpoint: its path and the key its batch travels under."""

    name: str
    path: str
    # None for the heartbeat endpoint, which takes one object per request.
    collection: str | None


ENDPOINTS: Final[Mapping[int, Endpoint]] = {
    METRIC: Endpoint("metrics", "/api/v1/metrics", "samples"),
    TRADE: Endpoint("trades", "/api/v1/trades", "trades"),
    HEARTBEAT: Endpoint("heartbeat", "/api/v1/heartbeat", None),
    EVENT: Endpoint("events", "/api/v1/events", "events"),
}


class InvalidItem(ValueError):
    """An item the server would refuse; `field` names the offending argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def to_payload(item: Item) -> Payload:
    """Turn one queued item into its JSON object, or raise InvalidItem."""
    kind = item[0]
    if kind == METRIC:
        _, ts, name, value, labels = item
        # The shape nearly every call has (float value, default ts, text labels) skips the
        # general checks below: the sender's time per item is GIL time the trading loop
        # waits for.
        if (
            type(value) is float
            and math.isfinite(value)
            and type(ts) is float
            and math.isfinite(ts)
            and type(name) is str
            and name
            and type(labels) is dict
            and all(type(label) is str for label in labels.values())
        ):
            return {"name": name, "value": value, "ts": ts, "labels": labels}
        return {
            "name": _text(name, "name"),
            "value": _number(value, "value"),
            "ts": _timestamp(ts),
            "labels": _labels(labels),
        }
    if kind == TRADE:
        _, ts, trade_id, symbol, side, quantity, price, pnl, fee = item
        payload: Payload = {
            "id": _trade_id(trade_id),
            "symbol": _text(symbol, "symbol"),
            "side": _side(side),
            "quantity": _trade_value(quantity, "quantity"),
            "price": _trade_value(price, "price"),
            "ts": _timestamp(ts),
        }
        notional = abs(cast(float, payload["quantity"]) * cast(float, payload["price"]))
        if notional > MAX_TRADE_MAGNITUDE:
            raise InvalidItem(
                "quantity", f"quantity x price must be at most {MAX_TRADE_MAGNITUDE:g}"
            )
        # Absent rather than null: the server derives nothing from a missing pnl.
        if pnl is not None:
            payload["pnl"] = _trade_value(pnl, "pnl")
        if fee is not None:
            payload["fee"] = _trade_value(fee, "fee")
        return payload
    if kind == HEARTBEAT:
        _, ts, status, info = item
        return {
            "status": _text(status, "status"),
            "info": _mapping(info, "info"),
            "ts": _timestamp(ts),
        }
    if kind == EVENT:
        _, ts, event_type, message, context = item
        return {
            "type": _text(event_type, "type"),
            "message": message if isinstance(message, str) else str(message),
            "context": _mapping(context, "context"),
            "ts": _timestamp(ts),
        }
    raise InvalidItem("kind", f"unknown item kind {kind!r}")


def describe(item: Item) -> str:
    """Name an item for a log line without dumping its whole content."""
    kind = item[0]
    endpoint = ENDPOINTS.get(kind) if isinstance(kind, int) else None
    label = endpoint.name if endpoint else "item"
    # The second argument after ts is the name / id / status / type in every shape.
    return f"{label} {item[2]!r:.80}" if len(item) > 2 else label


def encode(endpoint: Endpoint, payloads: Sequence[Payload]) -> bytes:
    """Encode a batch as the endpoint's request body; ValueError/TypeError if unencodable."""
    document: object = (
        payloads[0] if endpoint.collection is None else {endpoint.collection: payloads}
    )
    # allow_nan=False: a NaN hidden in an event context must fail here, not at the server.
    return json.dumps(document, separators=(",", ":"), allow_nan=False, default=str).encode()


def encodable(payload: Payload) -> bool:
    """Whether one payload survives `encode` (used to find the culprit in a failed batch)."""
    try:
        json.dumps(payload, allow_nan=False, default=str)
    except Exception:
        # default=str calls arbitrary __str__ methods: anything may come out of them.
        return False
    return True


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidItem(field, f"expected a non-empty string, got {value!r:.80}")
    return value


def _number(value: object, field: str) -> float:
    # Strings are refused although float() would parse them: a price that is a string is
    # a bug upstream that should show, not be papered over.
    if isinstance(value, str | bytes):
        raise InvalidItem(field, f"expected a number, got {value!r:.80}")
    try:
        number = float(value)  # type: ignore[arg-type]  # Decimal, numpy scalars, ...
    except (TypeError, ValueError, OverflowError):
        raise InvalidItem(field, f"expected a number, got {value!r:.80}") from None
    if not math.isfinite(number):
        raise InvalidItem(field, f"expected a finite number, got {number!r}")
    return number


def _trade_value(value: object, field: str) -> float:
    number = _number(value, field)
    if abs(number) > MAX_TRADE_MAGNITUDE:
        raise InvalidItem(field, f"must be at most {MAX_TRADE_MAGNITUDE:g} in magnitude")
    return number


def _timestamp(value: object) -> float:
    """UNIX seconds from a number, an aware datetime or an ISO 8601 string with offset."""
    if isinstance(value, datetime):
        # A naive datetime is local time, as everywhere else in Python.
        return value.timestamp()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidItem("ts", f"not an ISO 8601 timestamp: {value!r:.80}") from None
        if parsed.tzinfo is None:
            raise InvalidItem("ts", f"ISO 8601 timestamp needs an offset: {value!r:.80}")
        return parsed.timestamp()
    if isinstance(value, bool):
        raise InvalidItem("ts", f"expected UNIX seconds, got {value!r}")
    return _number(value, "ts")


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidItem("labels", f"expected a mapping, got {type(value).__name__}")
    # The server stores label values as text; coercing here keeps `timeframe=5` from
    # failing a whole batch.
    return {str(key): item if isinstance(item, str) else str(item) for key, item in value.items()}


def _mapping(value: object, field: str) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise InvalidItem(field, f"expected a mapping, got {type(value).__name__}")
    return {str(key): item for key, item in value.items()}


def _trade_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value, "id")


def _side(value: object) -> str:
    side = value.lower() if isinstance(value, str) else value
    if side not in TRADE_SIDES:
        raise InvalidItem("side", f"expected 'buy' or 'sell', got {value!r:.80}")
    assert isinstance(side, str)
    return side
