"""Parameters of metric queries: text from a URL in, plain values out.

Pure: no Django, no I/O, so the API, the command line and the tests share one
reading of `start`, `end`, `step`, `labels` and `aggregation`. Every problem raises
`ParamError` naming the parameter, which the API turns into a 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeVar, cast

import orjson

T = TypeVar("T")

Aggregation = Literal["avg", "min", "max", "last", "sum", "count"]
AGGREGATIONS: Final[tuple[Aggregation, ...]] = ("avg", "min", "max", "last", "sum", "count")
DEFAULT_AGGREGATION: Final[Aggregation] = "avg"
DEFAULT_RANGE: Final = timedelta(hours=1)
# A step longer than a year is a mistake, not a chart; it also keeps bucket arithmetic
# far away from datetime's limits.
MAX_STEP: Final = timedelta(days=366)

EMPTY_LABELS_KEY: Final = "{}"
LABEL_NAME_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP_PATTERN: Final = re.compile(r"(\d{1,9})([smhdw]?)")
_STEP_UNITS: Final[Mapping[str, int]] = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_UNIX_SECONDS_PATTERN: Final = re.compile(r"-?\d+(\.\d+)?")
# In a URL query a literal "+" decodes to a space, so `...T10:00:00+02:00` typed by
# hand arrives as `...T10:00:00 02:00`; reading it back is kinder than a 400.
_SPACE_FOR_PLUS: Final = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")
_OLDEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NEWEST: Final = datetime(9999, 1, 1, tzinfo=UTC)


class ParamError(ValueError):
    """One bad parameter: which one, and what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, object]:
        """The error in the API's shape: `{"index": null, "field": ..., "message": ...}`."""
        return {"index": None, "field": self.field, "message": self.message}


class ParamErrors(ValueError):
    """Every bad parameter of one request, so a caller can fix them all at once."""

    def __init__(self, errors: list[ParamError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def parse_time(value: str, field: str) -> datetime:
    """Read ISO 8601 with a UTC offset, or UNIX seconds, as an aware UTC datetime."""
    text = value.strip()
    if not text:
        raise ParamError(field, "must not be empty")
    if _UNIX_SECONDS_PATTERN.fullmatch(text):
        seconds = float(text)
        if not math.isfinite(seconds) or not (_OLDEST.timestamp() <= seconds < _NEWEST.timestamp()):
            raise ParamError(field, "UNIX seconds must be between 1970 and 9999")
        return datetime.fromtimestamp(seconds, tz=UTC)
    text = _SPACE_FOR_PLUS.sub(r"\1+\2", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ParamError(
            field, "must be ISO 8601 with an offset (e.g. 2026-01-31T12:00:00Z) or UNIX seconds"
        ) from None
    if parsed.tzinfo is None:
        raise ParamError(field, "needs a UTC offset (e.g. Z or +00:00)")
    parsed = parsed.astimezone(UTC)
    if not (_OLDEST <= parsed < _NEWEST):
        raise ParamError(field, "must be between 1970 and 9999")
    return parsed


def parse_step(value: str) -> timedelta:
    """Read a bucket width: whole seconds (`60`), or a number with s/m/h/d/w (`5m`)."""
    match = _STEP_PATTERN.fullmatch(value.strip())
    if not match:
        raise ParamError(
            "step", "must be whole seconds (e.g. 60) or a number with s, m, h, d or w (e.g. 5m)"
        )
    seconds = int(match.group(1)) * _STEP_UNITS[match.group(2)]
    if seconds < 1:
        raise ParamError("step", "must be at least 1 second")
    step = timedelta(seconds=seconds)
    if step > MAX_STEP:
        raise ParamError("step", f"must be at most {MAX_STEP.days} days")
    return step


def parse_labels(value: str) -> dict[str, str]:
    """Read labels as a JSON object (`{"symbol":"BTC/USDT"}`) or `k=v,k2=v2` pairs.

    An empty value means "no labels" (the series without labels), which is different
    from leaving the parameter out (every series of the name).
    """
    text = value.strip()
    if text.startswith("{"):
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ParamError("labels", "is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise ParamError("labels", "must be a JSON object")
        labels = decoded
    else:
        labels = {}
        for pair in filter(None, (part.strip() for part in text.split(","))):
            key, equals, label = pair.partition("=")
            if not equals:
                raise ParamError("labels", f"{pair!r} is not of the form name=value")
            key = key.strip()
            if key in labels:
                raise ParamError("labels", f"label {key!r} is given twice")
            labels[key] = label.strip()
    for key, label in labels.items():
        if not LABEL_NAME_PATTERN.fullmatch(key):
            raise ParamError("labels", f"label name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if not isinstance(label, str):
            raise ParamError("labels", f"the value of label {key!r} must be a string")
    return cast(dict[str, str], labels)


def labels_key(labels: Mapping[str, str]) -> str:
    """The canonical JSON of a label set: how `MetricSeries.labels_key` identifies it.

    Must match what ingestion stores: orjson, sorted keys, no spaces.
    """
    if not labels:
        return EMPTY_LABELS_KEY
    return orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS).decode()


def parse_aggregation(value: str) -> Aggregation:
    """Read one of avg, min, max, last, sum, count."""
    text = value.strip().lower()
    if text not in AGGREGATIONS:
        raise ParamError("aggregation", f"must be one of {', '.join(AGGREGATIONS)}")
    return text


@dataclass(frozen=True)
class MetricQueryParams:
    """A validated metric query, before the source is looked up."""

    source: str
    name: str
    labels: dict[str, str] | None
    start: datetime
    end: datetime
    step: timedelta | None
    aggregation: Aggregation


QUERY_PARAMETERS: Final = frozenset(
    {"source", "name", "labels", "start", "end", "step", "aggregation", "format"}
)


def parse_metric_query(params: Mapping[str, list[str]], *, now: datetime) -> MetricQueryParams:
    """Read the parameters of `GET /api/v1/metrics/query`, collecting every error.

    `params` maps each parameter to all the values it was given (a QueryDict's
    `lists()`), so that a parameter given twice is an error rather than a guess.
    Defaults: `end` now, `start` one hour before `end`, no `step` (raw points),
    aggregation `avg`.
    """
    errors: list[ParamError] = []
    values: dict[str, str] = {}
    for key, given in params.items():
        if key not in QUERY_PARAMETERS:
            allowed = ", ".join(sorted(QUERY_PARAMETERS - {"format"}))
            errors.append(ParamError(key, f"unknown parameter; allowed: {allowed}"))
        elif len(given) != 1:
            errors.append(ParamError(key, "give this parameter once"))
        else:
            values[key] = given[0]

    def required(field: str, what: str) -> str:
        if field not in params:
            errors.append(ParamError(field, f"is required ({what})"))
            return ""
        text = values.get(field, "").strip()
        if field in values and not text:
            errors.append(ParamError(field, "must not be empty"))
        return text

    def optional(field: str, parse: Callable[[str], T]) -> T | None:
        if field not in values:
            return None
        try:
            return parse(values[field])
        except ParamError as error:
            errors.append(error)
            return None

    source = required("source", "a source id or name")
    name = required("name", "a metric name")
    labels = optional("labels", parse_labels)
    start = optional("start", lambda text: parse_time(text, "start"))
    end = optional("end", lambda text: parse_time(text, "end"))
    step = optional("step", parse_step)
    aggregation = optional("aggregation", parse_aggregation)

    if end is None:
        end = now
    if start is None:
        start = end - DEFAULT_RANGE
    if start > end and not any(error.field in ("start", "end") for error in errors):
        errors.append(ParamError("start", "must not be after end"))
    if errors:
        raise ParamErrors(errors)
    return MetricQueryParams(
        source=source,
        name=name,
        labels=labels,
        start=start,
        end=end,
        step=step,
        aggregation=aggregation or DEFAULT_AGGREGATION,
    )
