"""Validation of ingestion batches: whole batches in, valid items or every error out.

Pure: plain decoded JSON in, plain values out; no Django, no I/O. It is written as
plain loops rather than a serializer per item because it runs for every sample of
every batch: a DRF serializer costs ~13 µs per sample, these checks about one.
Each error names the item's index and the field, so a trading system can fix its
payload from the answer alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import orjson

NAME_PATTERN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:.]*")
LABEL_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EVENT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_.:-]*")

MAX_NAME_LENGTH = 200
MAX_LABELS = 16
MAX_LABEL_NAME_LENGTH = 100
MAX_LABEL_VALUE_LENGTH = 200
MAX_TRADE_ID_LENGTH = 100
MAX_SYMBOL_LENGTH = 50
MAX_EVENT_TYPE_LENGTH = 100
MAX_MESSAGE_LENGTH = 4000
MAX_CONTEXT_BYTES = 16_384
MAX_FUTURE = timedelta(minutes=5)
# A batch with thousands of bad items answers with the first ones: enough to fix it.
MAX_REPORTED_ERRORS = 100
# The largest magnitude of a trade's pnl, fee, quantity, price and notional (quantity x
# price). A quadrillion is beyond any real fill, and it keeps every sum the derived
# metrics fold (total, daily and weekly PnL, positions) finite for any realistic number of
# trades (it would take 10^293 of them to overflow a float): a PnL figure is never
# lost to an overflow.
MAX_TRADE_MAGNITUDE = 1e15

SAMPLE_FIELDS = frozenset({"name", "value", "ts", "labels"})
TRADE_FIELDS = frozenset({"id", "symbol", "side", "quantity", "price", "pnl", "fee", "ts"})
EVENT_FIELDS = frozenset({"type", "message", "context", "ts"})
HEARTBEAT_FIELDS = frozenset({"status", "info", "ts"})
HEARTBEAT_STATUSES = ("ok", "degraded", "error", "starting", "stopping")
TRADE_SIDES = ("buy", "sell")

EMPTY_LABELS_KEY = "{}"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem: which item (None for the batch itself), which field, what is wrong."""

    index: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class BatchInvalid(Exception):
    """The batch is refused as a whole; `errors` says why."""

    def __init__(self, errors: list[FieldError], total: int | None = None) -> None:
        super().__init__(f"{total or len(errors)} error(s)")
        self.errors = errors
        self.total = total if total is not None else len(errors)


class BatchTooLarge(Exception):
    """More items than the configured maximum."""

    def __init__(self, items: int, limit: int) -> None:
        super().__init__(f"{items} items in one batch; the limit is {limit}.")
        self.items = items
        self.limit = limit


class ItemError(Exception):
    """Raised inside an item check; carries the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    """The time window a timestamp must fall in, and the batch size limit."""

    now: datetime
    retention: timedelta
    max_items: int
    # Worked out once per batch, not once per timestamp: every sample is checked against them.
    oldest: datetime = field(init=False)
    newest: datetime = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "oldest", self.now - self.retention)
        object.__setattr__(self, "newest", self.now + MAX_FUTURE)


class Sample(NamedTuple):
    """One valid metric sample. A named tuple rather than a frozen dataclass: as immutable,
    and built three times faster, which counts at hundreds of thousands a second."""

    name: str
    labels: Mapping[str, str]
    labels_key: str
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class TradeIn:
    trade_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    pnl: float | None
    fee: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class EventIn:
    type: str
    message: str
    context: Mapping[str, Any]
    ts: datetime


@dataclass(frozen=True, slots=True)
class HeartbeatIn:
    status: str
    info: Mapping[str, Any]
    ts: datetime


# --- field checks ----------------------------------------------------------------------


def _number(value: Any, field: str) -> float:
    # bool is an int in Python, but `true` is not a number in a payload.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(field, f"must be a number, not {_json_type(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ItemError(field, "must be a finite number (no NaN or infinity)")
    return number


def _trade_value(value: Any, field: str) -> float:
    number = _number(value, field)
    if abs(number) > MAX_TRADE_MAGNITUDE:
        raise ItemError(
            field, f"must be at most {MAX_TRADE_MAGNITUDE:g} in magnitude, got {number:g}"
        )
    return number


def _text(value: Any, field: str, max_length: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ItemError(field, f"must be a string, not {_json_type(value)}")
    if required and not value:
        raise ItemError(field, "must not be empty")
    if len(value) > max_length:
        raise ItemError(field, f"must be at most {max_length} characters")
    return value


def parse_timestamp(value: Any, field: str, limits: Limits) -> datetime:
    """ISO 8601 with a UTC offset, or UNIX seconds; missing (None) means now."""
    if value is None:
        return limits.now
    if isinstance(value, bool):
        raise ItemError(field, "must be ISO 8601 with an offset or UNIX seconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ItemError(field, "must be a finite number of UNIX seconds")
        try:
            ts = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ItemError(field, "is out of range") from None
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise ItemError(
                field, "must be ISO 8601 (e.g. 2026-01-31T12:00:00Z) or UNIX seconds"
            ) from None
        if ts.tzinfo is None:
            raise ItemError(field, "needs a UTC offset (e.g. Z or +00:00)")
    else:
        raise ItemError(field, f"must be ISO 8601 or UNIX seconds, not {_json_type(value)}")
    if ts > limits.newest:
        raise ItemError(field, "is more than 5 minutes in the future (check the clock)")
    if ts < limits.oldest:
        raise ItemError(field, f"is older than the retention ({limits.retention.days} days)")
    return ts


# A source sends the same few label sets over and over: each is checked and encoded
# once per process (bounded; cleared whole when full). Only valid sets are kept.
_checked_labels: dict[tuple[tuple[str, Any], ...], tuple[Mapping[str, str], str]] = {}
_CHECKED_LABELS_LIMIT = 10_000


def labels_checked(value: Any) -> tuple[Mapping[str, str], str]:
    if value is None or value == {}:
        return {}, EMPTY_LABELS_KEY
    if not isinstance(value, dict):
        raise ItemError("labels", f"must be an object, not {_json_type(value)}")
    try:
        known = tuple(value.items())
        checked = _checked_labels.get(known)
    except TypeError:  # an unhashable value (a list): certainly invalid, checked below
        known, checked = (), None
    if checked is not None:
        return checked
    result = _check_labels(value)
    if known:
        if len(_checked_labels) >= _CHECKED_LABELS_LIMIT:
            _checked_labels.clear()
        _checked_labels[known] = result
    return result


def _check_labels(value: dict[str, Any]) -> tuple[Mapping[str, str], str]:
    if len(value) > MAX_LABELS:
        raise ItemError("labels", f"has {len(value)} labels; at most {MAX_LABELS} are allowed")
    for key, label in value.items():
        if len(key) > MAX_LABEL_NAME_LENGTH or not LABEL_NAME_PATTERN.fullmatch(key):
            raise ItemError(
                f"labels.{key}", "label names must match [A-Za-z_][A-Za-z0-9_]* (100 at most)"
            )
        if not isinstance(label, str):
            raise ItemError(f"labels.{key}", f"must be a string, not {_json_type(label)}")
        if len(label) > MAX_LABEL_VALUE_LENGTH:
            raise ItemError(f"labels.{key}", f"must be at most {MAX_LABEL_VALUE_LENGTH} characters")
    return value, orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _unknown_fields(item: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in item:
        if key not in allowed:
            raise ItemError(key, f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- items -------------------------------------------------------------------------------


# Metric names repeat from sample to sample: each valid one is matched once per process
# (bounded; cleared whole when full).
valid_names: set[str] = set()
_VALID_NAMES_LIMIT = 10_000


def check_name(name: Any) -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
        raise ItemError(
            "name", f"must match [A-Za-z_:][A-Za-z0-9_:.]* and be at most {MAX_NAME_LENGTH} long"
        )
    if len(valid_names) >= _VALID_NAMES_LIMIT:
        valid_names.clear()
    valid_names.add(name)


def _sample(item: Any, limits: Limits) -> Sample:
    # The checks run in the order their errors are reported; the common case (a plain
    # float, a known name, UNIX seconds) takes the shortest way through each.
    if not isinstance(item, dict):
        raise ItemError("", f"each sample must be an object, not {_json_type(item)}")
    if not item.keys() <= SAMPLE_FIELDS:
        _unknown_fields(item, SAMPLE_FIELDS)
    if "name" not in item:
        raise ItemError("name", "is required")
    name = item["name"]
    if type(name) is not str or name not in valid_names:
        check_name(name)
    if "value" not in item:
        raise ItemError("value", "is required")
    value = item["value"]
    if type(value) is not float or not math.isfinite(value):
        value = _number(value, "value")
    labels, labels_key = labels_checked(item.get("labels"))
    raw_ts = item.get("ts")
    ts = (
        unix_seconds(raw_ts, limits)
        if type(raw_ts) is float or type(raw_ts) is int
        else parse_timestamp(raw_ts, "ts", limits)
    )
    return Sample(name, labels, labels_key, ts, value)


def unix_seconds(value: float, limits: Limits) -> datetime:
    """`parse_timestamp` for a plain number (not a bool): the same answers, sooner."""
    try:
        ts = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        # NaN, infinities and out-of-range numbers: let the full check word the error.
        return parse_timestamp(value, "ts", limits)
    if ts > limits.newest or ts < limits.oldest:
        return parse_timestamp(value, "ts", limits)
    return ts


def _trade(item: Any, limits: Limits) -> TradeIn:
    if not isinstance(item, dict):
        raise ItemError("", f"each trade must be an object, not {_json_type(item)}")
    _unknown_fields(item, TRADE_FIELDS)
    for required in ("id", "symbol", "side", "quantity", "price"):
        if required not in item:
            raise ItemError(required, "is required")
    trade_id = _text(item["id"], "id", MAX_TRADE_ID_LENGTH)
    symbol = _text(item["symbol"], "symbol", MAX_SYMBOL_LENGTH)
    side = item["side"]
    if side not in TRADE_SIDES:
        raise ItemError("side", "must be 'buy' or 'sell'")
    quantity = _trade_value(item["quantity"], "quantity")
    if quantity <= 0:
        raise ItemError("quantity", "must be greater than 0 (the side gives the direction)")
    price = _trade_value(item["price"], "price")
    if price <= 0:
        raise ItemError("price", "must be greater than 0")
    if quantity * price > MAX_TRADE_MAGNITUDE:
        raise ItemError(
            "quantity",
            f"quantity x price (the notional, {quantity * price:g}) must be at most "
            f"{MAX_TRADE_MAGNITUDE:g}",
        )
    pnl = None if item.get("pnl") is None else _trade_value(item["pnl"], "pnl")
    fee = 0.0 if item.get("fee") is None else _trade_value(item["fee"], "fee")
    ts = parse_timestamp(item.get("ts"), "ts", limits)
    return TradeIn(trade_id, symbol, side, quantity, price, pnl, fee, ts)


def _context(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ItemError(field, f"must be an object, not {_json_type(value)}")
    try:
        size = len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        raise ItemError(field, "must be plain JSON") from None
    if size > MAX_CONTEXT_BYTES:
        raise ItemError(field, f"must be at most {MAX_CONTEXT_BYTES} bytes of JSON")
    return value


def _event(item: Any, limits: Limits) -> EventIn:
    if not isinstance(item, dict):
        raise ItemError("", f"each event must be an object, not {_json_type(item)}")
    _unknown_fields(item, EVENT_FIELDS)
    if "type" not in item:
        raise ItemError("type", "is required")
    event_type = _text(item["type"], "type", MAX_EVENT_TYPE_LENGTH)
    if not EVENT_TYPE_PATTERN.fullmatch(event_type):
        raise ItemError("type", "must match [a-z][a-z0-9_.:-]* (e.g. circuit_breaker_tripped)")
    message = (
        ""
        if item.get("message") is None
        else _text(item["message"], "message", MAX_MESSAGE_LENGTH, required=False)
    )
    context = _context(item.get("context"), "context")
    if event_type == "artifact_updated":
        artifact = context.get("artifact")
        if not isinstance(artifact, str) or not artifact:
            raise ItemError("context.artifact", "artifact_updated needs the artifact's name")
    ts = parse_timestamp(item.get("ts"), "ts", limits)
    return EventIn(event_type, message, context, ts)


# --- batches -------------------------------------------------------------------------------

Item = TypeVar("Item")


def _batch(
    body: Any,
    key: str,
    check: Callable[[Any, Limits], Item],
    limits: Limits,
) -> list[Item]:
    if not isinstance(body, dict):
        raise BatchInvalid([FieldError(None, None, f"the body must be a JSON object with '{key}'")])
    unknown = [name for name in body if name != key]
    if unknown:
        raise BatchInvalid(
            [
                FieldError(None, name, f"unknown field; the body holds only '{key}'")
                for name in unknown
            ]
        )
    if key not in body:
        raise BatchInvalid([FieldError(None, key, "is required")])
    items = body[key]
    if not isinstance(items, list):
        raise BatchInvalid([FieldError(None, key, f"must be an array, not {_json_type(items)}")])
    if not items:
        raise BatchInvalid([FieldError(None, key, "must hold at least one item")])
    if len(items) > limits.max_items:
        raise BatchTooLarge(len(items), limits.max_items)
    valid: list[Item] = []
    errors: list[FieldError] = []
    error_count = 0
    for index, item in enumerate(items):
        try:
            valid.append(check(item, limits))
        except ItemError as exc:
            error_count += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(FieldError(index, exc.field or None, exc.message))
    if errors:
        raise BatchInvalid(errors, total=error_count)
    return valid


def validate_samples(body: Any, limits: Limits) -> list[Sample]:
    """Every sample of a `{"samples": [...]}` body, or BatchInvalid / BatchTooLarge."""
    return _batch(body, "samples", _sample, limits)


def validate_trades(body: Any, limits: Limits) -> list[TradeIn]:
    """Every trade of a `{"trades": [...]}` body, or BatchInvalid / BatchTooLarge."""
    return _batch(body, "trades", _trade, limits)


def validate_events(body: Any, limits: Limits) -> list[EventIn]:
    """Every event of an `{"events": [...]}` body, or BatchInvalid / BatchTooLarge."""
    return _batch(body, "events", _event, limits)


def validate_heartbeat(body: Any, limits: Limits) -> HeartbeatIn:
    """The heartbeat of a `{"status": "ok", "info": {...}}` body (both optional)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BatchInvalid([FieldError(None, None, "the body must be a JSON object")])
    try:
        _unknown_fields(body, HEARTBEAT_FIELDS)
        status = body.get("status", "ok")
        if status not in HEARTBEAT_STATUSES:
            raise ItemError("status", f"must be one of {', '.join(HEARTBEAT_STATUSES)}")
        info = _context(body.get("info"), "info")
        ts = parse_timestamp(body.get("ts"), "ts", limits)
    except ItemError as exc:
        raise BatchInvalid([FieldError(None, exc.field, exc.message)]) from None
    return HeartbeatIn(status, info, ts)
