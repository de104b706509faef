"""Reads of alerts and silences for the operator API: filtered, ordered, few queries.

Each selector returns a queryset with what its callers show already joined or
prefetched, so listing a page of alerts costs one query however long the page is.
Parsing of what people type (severity labels, "id or name" references) lives here
too, so the API, the admin and the command line read them the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Final, Literal, TypeVar

from django.db.models import Model, Prefetch, Q, QuerySet

from metrics.models import Schedule, Source, Tag

from .models import Alert, AlertTransition, Rule, Severity, Silence

M = TypeVar("M", bound=Model)

# `open` is the operator's word for "not resolved": pending or firing.
ALERT_STATUSES: Final[dict[str, frozenset[str]]] = {
    Alert.State.PENDING.value: frozenset({Alert.State.PENDING.value}),
    Alert.State.FIRING.value: frozenset({Alert.State.FIRING.value}),
    Alert.State.RESOLVED.value: frozenset({Alert.State.RESOLVED.value}),
    "open": frozenset({Alert.State.PENDING.value, Alert.State.FIRING.value}),
}
SEVERITY_LABELS: Final[dict[str, int]] = {
    str(label).lower(): int(value) for value, label in Severity.choices
}

# Tradewatch's watchdog (`health.selfmonitoring`): an INFO alert that fires always, by
# design, for a dead man's switch outside Tradewatch. It is routed and delivered like any
# alert, but where people read what is wrong (`tradewatch status`, health scores, the
# dashboard's firing alerts) it is no problem and is left out.
WATCHDOG_PACK: Final = "self"
WATCHDOG_METRIC: Final = "watchdog"

SilenceState = Literal["active", "scheduled", "expired"]
SILENCE_FILTERS: Final = ("active", "scheduled", "expired", "all")


def severity_label(severity: int) -> str:
    """The lower-case label of a severity (`warning`), as the API shows and reads it."""
    return str(Severity(severity).label).lower()


def severity_parse(text: str) -> int:
    """Read a severity label (`warning`, any case); ValueError names the valid ones."""
    value = SEVERITY_LABELS.get(text.strip().lower())
    if value is None:
        raise ValueError(f"Unknown severity {text!r}: use one of {', '.join(SEVERITY_LABELS)}.")
    return value


def _find_by_id_or_name(queryset: QuerySet[M], refs: Iterable[str]) -> tuple[list[M], list[str]]:
    """Objects for references that are ids (all digits) or names, in one query.

    An all-digit reference is an id when such an id exists, else a name (names may be
    digits too); returns the objects in the references' order and the unknown ones.
    """
    refs = [ref.strip() for ref in refs]
    ids = [int(ref) for ref in refs if ref.isdigit()]
    rows = list(queryset.filter(Q(pk__in=ids) | Q(name__in=refs))) if refs else []
    by_id = {row.pk: row for row in rows}
    by_name = {row.name: row for row in rows}  # type: ignore[attr-defined]
    found: list[M] = []
    missing: list[str] = []
    for ref in refs:
        row = by_id.get(int(ref)) if ref.isdigit() else None
        row = row or by_name.get(ref)
        if row is None:
            missing.append(ref)
        elif row not in found:
            found.append(row)
    return found, missing


def is_watchdog() -> Q:
    """Alerts of Tradewatch's watchdog rule (see `WATCHDOG_PACK`)."""
    return Q(rule__pack=WATCHDOG_PACK, rule__metric=WATCHDOG_METRIC)


def without_watchdog(alerts: QuerySet[Alert]) -> QuerySet[Alert]:
    """`alerts` but the watchdog's: what people count as problems."""
    return alerts.exclude(is_watchdog())


def sources_find(refs: Iterable[str]) -> tuple[list[Source], list[str]]:
    """Sources by id or name, and the references that matched none."""
    return _find_by_id_or_name(Source.objects.all(), refs)


def schedule_find(ref: str) -> Schedule | None:
    """A schedule by id or name."""
    found, _ = _find_by_id_or_name(Schedule.objects.all(), [ref])
    return found[0] if found else None


def rules_find(refs: Iterable[str]) -> tuple[list[Rule], list[str]]:
    """Rules by id or name, and the references that matched none."""
    return _find_by_id_or_name(Rule.objects.all(), refs)


def tags_find(names: Iterable[str]) -> tuple[list[Tag], list[str]]:
    """Tags by name, and the names that matched none."""
    names = [name.strip() for name in names]
    by_name = {tag.name: tag for tag in Tag.objects.filter(name__in=names)} if names else {}
    found = list({name: by_name[name] for name in names if name in by_name}.values())
    return found, [name for name in names if name not in by_name]


def alert_list(
    *,
    states: Collection[str] | None = None,
    severities: Collection[int] | None = None,
    severity_min: int | None = None,
    source: Source | None = None,
    rule: Rule | None = None,
    since: datetime | None = None,
    acknowledged: bool | None = None,
) -> QuerySet[Alert]:
    """Alerts matching every filter given (None: no filter), newest activity first.

    `since` compares with `last_seen`: "what has been going on since then".
    """
    alerts = Alert.objects.select_related("rule", "source", "acknowledged_by")
    if states is not None:
        alerts = alerts.filter(state__in=list(states))
    if severities is not None:
        alerts = alerts.filter(severity__in=list(severities))
    if severity_min is not None:
        alerts = alerts.filter(severity__gte=severity_min)
    if source is not None:
        alerts = alerts.filter(source=source)
    if rule is not None:
        alerts = alerts.filter(rule=rule)
    if since is not None:
        alerts = alerts.filter(last_seen__gte=since)
    if acknowledged is not None:
        alerts = alerts.filter(acknowledged_at__isnull=not acknowledged)
    return alerts.order_by("-last_seen", "-id")


def alert_get(*, alert_id: int) -> Alert | None:
    """One alert with its timeline (oldest first) and the people involved, or None."""
    timeline = AlertTransition.objects.select_related("actor").order_by("at", "id")
    return (
        Alert.objects.select_related("rule", "source", "acknowledged_by")
        .prefetch_related(Prefetch("timeline", queryset=timeline))
        .filter(pk=alert_id)
        .first()
    )


def _silence_over(now: datetime) -> Q:
    # An "until resolved" silence is over once its alert resolves, even on the paths
    # that do not stamp `expired_at` (a pending alert closing quietly).
    return Q(expired_at__isnull=False) | Q(ends_at__lte=now) | Q(alert__state=Alert.State.RESOLVED)


def silence_list(*, state: str = "active", now: datetime) -> QuerySet[Silence]:
    """Silences by state at `now`, latest start first.

    `active`: not over (in force, or `scheduled` to start later); `expired`: over (ended,
    expired by hand, or its alert resolved); `all`: every one.
    """
    silences = Silence.objects.select_related("alert", "created_by", "schedule").prefetch_related(
        "sources", "tags", "rules"
    )
    if state == "active":
        silences = silences.exclude(_silence_over(now))
    elif state == "scheduled":
        silences = silences.exclude(_silence_over(now)).filter(starts_at__gt=now)
    elif state == "expired":
        silences = silences.filter(_silence_over(now))
    elif state != "all":
        raise ValueError(f"Unknown silence state {state!r}.")
    return silences.order_by("-starts_at", "-id")


def silence_get(*, silence_id: int) -> Silence | None:
    """One silence with what it matches, or None."""
    return (
        Silence.objects.select_related("alert", "created_by", "schedule")
        .prefetch_related("sources", "tags", "rules")
        .filter(pk=silence_id)
        .first()
    )


def silence_state(silence: Silence, now: datetime) -> SilenceState:
    """Where a silence stands at `now` (its `alert` should be loaded with it)."""
    if (
        silence.expired_at is not None
        or (silence.ends_at is not None and silence.ends_at <= now)
        or (silence.alert is not None and silence.alert.state == Alert.State.RESOLVED)
    ):
        return "expired"
    return "scheduled" if silence.starts_at > now else "active"
