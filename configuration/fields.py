"""The configuration file's sections and fields, in the operator's words.

One table drives the JSON Schema (`configuration.schema`), the reading of a file into
its canonical form (`configuration.document`), the export and the diff. Defaults are
the models' own, so a field left out of a file means what the admin's empty form means.

Pure apart from reading the models' field defaults: no queries.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from django.db import models

from alerts.channels.registry import KINDS as CHANNEL_KINDS
from alerts.models import Channel, Policy, Rule, Severity, Silence, Threshold, ThresholdOverride
from alerts.models.delivery import WEEKDAYS
from health.models import HealthCheck
from metrics.models import Expectation, Schedule, Source

VERSION: Final = 1
# The order sections are written in, and applied in (each refers only to earlier ones,
# except policies and checks, which refer to rules and recovery actions above them).
SECTIONS: Final = (
    "schedules",
    "sources",
    "channels",
    "recovery_actions",
    "rules",
    "policies",
    "health_checks",
    "silences",
)
REQUIRED: Final = object()

# Every channel kind but recovery actions, which have their own section.
CHANNEL_KINDS_ORDINARY: Final = tuple(kind for kind in CHANNEL_KINDS if kind != "recovery")
# The other kinds' values, named for the OpenAPI schema's enums.
SOURCE_KINDS: Final = tuple(Source.Kind.values)
SCHEDULE_KINDS: Final = tuple(Schedule.Kind.values)
EXPECTATION_SIGNALS: Final = tuple(Expectation.Signal.values)
WINDOW_PATTERN: Final = r"(?i)^([a-z,-]+\s+)?([01]?\d|2[0-4]):[0-5]\d-([01]?\d|2[0-4]):[0-5]\d$"
RULE_KINDS: Final = tuple(Rule.Kind.values)
THRESHOLD_ACTIONS: Final = tuple(Threshold.Action.values)
HEALTH_CHECK_KINDS: Final = tuple(HealthCheck.Kind.values)
SEVERITY_NAMES: Final = tuple(severity.label.upper() for severity in Severity)
WEEKDAY_NAMES: Final = tuple(name.lower() for _, name in WEEKDAYS)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
DURATION_PATTERN: Final = r"^((\d+(\.\d+)?)(ms|d|h|m|s))+$"
_UNITS: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Longer than anything Tradewatch waits for, and well inside what the database stores.
MAX_DURATION: Final = timedelta(days=3650)
SECRET_REFERENCE_PATTERN: Final = r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"  # noqa: S105 (a pattern)


@dataclass(frozen=True)
class Field:
    """One field of an object in the file.

    `kind` is one of: text, bool, int, number, duration, severity, choice, object, ref
    (a name in section `ref`), refs (a list of them), tags, timestamp, secrets, items
    (a list of objects described by `items`), windows (weekly windows such as
    "mon-fri 09:30-16:00"), exchange (an exchange calendar's code).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    ref: str = ""
    nullable: bool = False
    minimum: float | None = None
    max_length: int | None = None
    items: tuple[Field, ...] = ()
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


# --- plain values ----------------------------------------------------------------------


def duration_text(value: timedelta) -> str:
    """`timedelta(minutes=90)` -> "1h30m"; the one spelling an export writes."""
    micros = round(value.total_seconds() * 1_000_000)
    if micros == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    if micros:
        seconds = micros / 1_000_000
        parts.append(f"{seconds:g}s" if seconds >= 1 or micros % 1000 else f"{micros // 1000}ms")
    return "".join(parts)


def duration_parse(value: Any) -> timedelta:
    """A duration from "1h30m", "90s", "250ms" or a number of seconds; ValueError else."""
    if isinstance(value, bool):
        raise ValueError("must be a duration")
    if isinstance(value, int | float):
        total = float(value)
        if not math.isfinite(total) or total < 0:
            raise ValueError("must be a duration of 0 seconds or more")
    elif isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value.strip()):
        parts = _DURATION_PART.findall(value.strip())
        total = sum(float(amount) * _UNITS[unit] for amount, unit in parts)
    else:
        raise ValueError("must be a duration such as 30s, 5m, 1h30m, 1d or a number of seconds")
    if total > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {duration_text(MAX_DURATION)}")
    return timedelta(seconds=total)


def severity_name(value: int) -> str:
    return Severity(value).label.upper()


def severity_value(name: str) -> int:
    try:
        return int(Severity[name.strip().upper()])
    except KeyError:
        raise ValueError(f"must be one of {', '.join(SEVERITY_NAMES)}") from None


def _default(model: type[models.Model], name: str) -> Any:
    """The model field's default in the file's spelling."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    if field.has_default():
        value = field.get_default()
    elif field.null:
        value = None
    else:
        value = "" if isinstance(field, models.CharField | models.TextField) else None
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(field, models.PositiveSmallIntegerField) and field.choices and value:
        return severity_name(value)
    return value


def _choices(model: type[models.Model], name: str) -> tuple[str, ...]:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return tuple(str(value) for value, _ in field.flatchoices)


def _length(model: type[models.Model], name: str) -> int | None:
    field = model._meta.get_field(name)
    return getattr(field, "max_length", None)


def _text(model: type[models.Model], name: str, **kw: Any) -> Field:
    return Field(name, "text", _default(model, name), max_length=_length(model, name), **kw)


def _plain(model: type[models.Model], name: str, kind: str, **kw: Any) -> Field:
    return Field(name, kind, _default(model, name), **kw)


def _choice(model: type[models.Model], name: str, **kw: Any) -> Field:
    return Field(name, "choice", _default(model, name), choices=_choices(model, name), **kw)


NAME_HELP: Final = "The object's name: how the file, the admin and the API know it."


def _name(model: type[models.Model]) -> Field:
    return Field("name", "text", REQUIRED, max_length=_length(model, "name"), help=NAME_HELP)


def _channel_fields(kinds: tuple[str, ...], *, with_kind: bool) -> tuple[Field, ...]:
    kind = (Field("kind", "choice", REQUIRED, choices=kinds),) if with_kind else ()
    return (
        _name(Channel),
        *kind,
        _plain(Channel, "enabled", "bool"),
        _plain(Channel, "min_severity", "severity"),
        _plain(Channel, "rate_limit", "int", minimum=0),
        _plain(Channel, "rate_window", "duration"),
        Field("config", "object", {}, help="The kind's settings that are not secret."),
        Field(
            "secrets",
            "secrets",
            {},
            help="The kind's secrets, each a reference to an environment variable read at "
            "apply time, e.g. webhook_url: ${SLACK_WEBHOOK_URL}. A secret left out keeps "
            "the value stored (typed in the admin, or applied before).",
        ),
    )


def section_fields() -> dict[str, tuple[Field, ...]]:
    """Every section's fields (read from the models now: defaults can depend on settings)."""
    overrides = (
        Field("source", "ref", REQUIRED, ref="sources"),
        Field("value", "number", REQUIRED),
        Field("clear_value", "number", None, nullable=True),
        _plain(ThresholdOverride, "enabled", "bool"),
    )
    thresholds = (
        Field("severity", "severity", REQUIRED),
        _choice(Threshold, "comparison"),
        Field("value", "number", REQUIRED),
        Field("clear_value", "number", None, nullable=True),
        _choice(
            Threshold,
            "action",
            help="halt or reduce_only the source when it fires "
            "(only with the rule's trading_actions on); empty: alert only.",
        ),
        Field("overrides", "items", [], items=overrides, help="Per-source values."),
    )
    ordinary = CHANNEL_KINDS_ORDINARY
    expectations = (
        Field("signal", "choice", REQUIRED, choices=EXPECTATION_SIGNALS),
        Field(
            "grace",
            "duration",
            None,
            nullable=True,
            help="decision, order, market_data: the longest silence allowed while the "
            "schedule is open; order_rejects: the window of the reject rate. Empty: the "
            "default (30m, 1h, 5m; 15m).",
        ),
        Field(
            "schedule",
            "ref",
            None,
            ref="schedules",
            nullable=True,
            help="Watched only while this schedule is open (empty: the source's).",
        ),
        _plain(Expectation, "enabled", "bool"),
    )
    return {
        "schedules": (
            _name(Schedule),
            _choice(Schedule, "kind"),
            Field(
                "exchange",
                "exchange",
                _default(Schedule, "exchange"),
                max_length=_length(Schedule, "exchange"),
                help="exchange kind: the calendar's code (XNYS, XLON, XETR, XTKS, CMES...); "
                "an alias (NYSE) is read as its code.",
            ),
            _text(Schedule, "timezone", help="weekly kind: an IANA time zone."),
            Field(
                "windows",
                "windows",
                [],
                help='weekly kind: "DAYS HH:MM-HH:MM" each, e.g. "mon-fri 09:30-16:00", '
                '"sun 02:00-04:00", "daily 22:00-06:00" (past midnight); 24:00 ends a day.',
            ),
            _plain(Schedule, "invert", "bool", help="Open outside the sessions or windows."),
            _text(Schedule, "description"),
        ),
        "sources": (
            _name(Source),
            _choice(Source, "kind"),
            _text(Source, "description"),
            _plain(Source, "enabled", "bool"),
            Field("tags", "tags", []),
            _plain(Source, "heartbeat_period", "duration"),
            _plain(Source, "heartbeat_grace", "duration"),
            Field(
                "schedule",
                "ref",
                None,
                ref="schedules",
                nullable=True,
                help="When the source is expected to run (empty: always): outside it a "
                "quiet source is 'market closed', and its heartbeat counts from the open.",
            ),
            Field(
                "expectations",
                "items",
                [],
                items=expectations,
                help="Alive but not trading: decision, order, market_data and "
                "order_rejects, each with its own grace and schedule.",
            ),
        ),
        "channels": _channel_fields(ordinary, with_kind=True),
        "recovery_actions": _channel_fields((), with_kind=False),
        "rules": (
            _name(Rule),
            _text(Rule, "description"),
            _plain(Rule, "enabled", "bool"),
            _choice(Rule, "kind"),
            Field("metric", "text", REQUIRED, max_length=_length(Rule, "metric")),
            Field("labels", "object", {}),
            _choice(Rule, "aggregation"),
            _plain(Rule, "window", "duration"),
            _plain(Rule, "change_percent", "bool"),
            Field(
                "source",
                "ref",
                None,
                ref="sources",
                nullable=True,
                help="Watch this source only (else every source, or `tag`'s).",
            ),
            Field("tag", "text", None, nullable=True, help="Watch the sources with this tag."),
            _plain(Rule, "for_duration", "duration"),
            _plain(Rule, "keep_firing_for", "duration"),
            _plain(Rule, "min_samples", "int", minimum=0),
            _text(Rule, "guard_metric"),
            Field("guard_minimum", "number", None, nullable=True),
            Field("m_of_n_m", "int", None, nullable=True, minimum=0),
            Field("m_of_n_n", "int", None, nullable=True, minimum=0),
            _choice(Rule, "missing_data"),
            _choice(Rule, "inhibited_by"),
            _text(Rule, "message_template"),
            _plain(Rule, "trading_actions", "bool"),
            Field(
                "schedule",
                "ref",
                None,
                ref="schedules",
                nullable=True,
                help="Judge only while this schedule is open (empty: always).",
            ),
            Field("thresholds", "items", [], items=thresholds),
        ),
        "policies": (
            _name(Policy),
            _plain(Policy, "enabled", "bool"),
            _plain(Policy, "min_severity", "severity"),
            Field("sources", "refs", [], ref="sources"),
            Field("tags", "tags", []),
            Field("rules", "refs", [], ref="rules"),
            Field("channels", "refs", REQUIRED, ref="channels"),
            _plain(Policy, "notify_resolved", "bool"),
            _plain(Policy, "notify_acknowledged", "bool"),
            Field("repeat_seconds", "object", _default(Policy, "repeat_seconds")),
            Field("escalate_after", "duration", None, nullable=True),
            Field("escalation_channels", "refs", [], ref="channels"),
            Field("fallback_channel", "ref", None, ref="channels", nullable=True),
            _plain(Policy, "digest_daily", "bool"),
            Field(
                "digest_weekly_day",
                "choice",
                None,
                choices=WEEKDAY_NAMES,
                nullable=True,
                help="The day the weekly operations digest goes out (null: none).",
            ),
            Field(
                "digest_time",
                "text",
                "08:00",
                max_length=8,
                help="When digests go out (HH:MM), in digest_timezone.",
            ),
            _text(Policy, "digest_timezone", help="An IANA time zone, e.g. Europe/London."),
        ),
        "health_checks": (
            _name(HealthCheck),
            Field("kind", "choice", REQUIRED, choices=_choices(HealthCheck, "kind")),
            Field("source", "ref", None, ref="sources", nullable=True),
            Field("config", "object", {}),
            _plain(HealthCheck, "enabled", "bool"),
            _plain(HealthCheck, "interval", "duration"),
            _plain(HealthCheck, "timeout", "duration"),
            _plain(HealthCheck, "failures_to_unhealthy", "int", minimum=0),
            _plain(HealthCheck, "successes_to_recover", "int", minimum=0),
            _plain(HealthCheck, "breaker_threshold", "int", minimum=0),
            _plain(HealthCheck, "breaker_retry", "duration"),
            Field("recovery_action", "ref", None, ref="recovery_actions", nullable=True),
            _choice(HealthCheck, "recover_when"),
        ),
        "silences": (
            Field("reason", "text", REQUIRED, max_length=_length(Silence, "reason")),
            Field("starts_at", "timestamp", REQUIRED),
            Field(
                "ends_at",
                "timestamp",
                None,
                nullable=True,
                help="Needed unless the silence has a schedule.",
            ),
            _plain(Silence, "min_severity", "severity"),
            Field("sources", "refs", [], ref="sources"),
            Field("tags", "tags", []),
            Field("rules", "refs", [], ref="rules"),
            Field(
                "schedule",
                "ref",
                None,
                ref="schedules",
                nullable=True,
                help="In force only while this schedule is open (a recurring maintenance "
                "window); then no end is needed.",
            ),
        ),
    }


def object_key(section: str, item: dict[str, Any]) -> str:
    """How an object of `section` is known: its name; a silence by reason and start."""
    if section == "silences":
        return f"{item.get('reason')} @ {item.get('starts_at')}"
    return str(item.get("name"))


# Nested lists of objects and the field that tells their items apart (for the diff).
ITEM_KEYS: Final[dict[str, str]] = {
    "thresholds": "severity",
    "overrides": "source",
    "expectations": "signal",
}
