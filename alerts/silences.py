"""Creating and ending silences: maintenance windows that hold notifications back.

A silence matches alerts by source, tag of the source, rule and minimum severity (an
empty set matches every one) from `starts_at` until `ends_at`, or until a given alert
resolves. `alerts.lifecycle` reads the silences in force (`active_silences`) when it
records a transition and asks whether one matches (`is_silenced`); nothing here
changes alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Field, ForeignObjectRel, Q, QuerySet
from django.utils import timezone

from metrics.models import Source, Tag

from .models import Alert, AlertTransition, Rule, Severity, Silence

logger = logging.getLogger(__name__)


class SilenceOver(Exception):
    """The silence has ended already (by time, by hand, or with its alert)."""


def silence_create(
    *,
    reason: str,
    created_by: AbstractBaseUser | None,
    sources: Iterable[Source] = (),
    tags: Iterable[Tag] = (),
    rules: Iterable[Rule] = (),
    min_severity: int = Severity.DEBUG,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    alert: Alert | None = None,
    now: datetime | None = None,
) -> Silence:
    """Mute matching alerts from `starts_at` (default now) to `ends_at` or until `alert` resolves.

    With both an end and an alert the silence ends at whichever comes first. Raises
    `ValidationError` naming the model field at fault (`ends_at`, `alert`, `reason`...).
    """
    now = now or timezone.now()
    starts_at = starts_at or now
    if ends_at is None and alert is None:
        raise ValidationError(
            {"ends_at": "A silence needs an end time, or an alert to last until it resolves."}
        )
    if ends_at is not None:
        if ends_at <= starts_at:
            raise ValidationError({"ends_at": "A silence must end after it starts."})
        if ends_at <= now:
            raise ValidationError({"ends_at": "A silence must end in the future."})
    if alert is not None and not alert.is_open:
        raise ValidationError({"alert": f"Alert {alert.pk} is resolved already."})
    silence = Silence(
        reason=reason,
        created_by=created_by if created_by is not None and created_by.pk is not None else None,  # type: ignore[misc]
        min_severity=min_severity,
        starts_at=starts_at,
        ends_at=ends_at,
        alert=alert,
    )
    with transaction.atomic():
        silence.full_clean()
        silence.save()
        silence.sources.set(list(sources))
        silence.tags.set(list(tags))
        silence.rules.set(list(rules))
    logger.info("silence %s created by %s: %s", silence.pk, created_by, reason)
    return silence


def alert_silence(
    *,
    alert: Alert,
    by: AbstractBaseUser,
    hours: int | None,
    via: str = "the admin",
    now: datetime | None = None,
) -> Silence:
    """Mute the alert's rule on its source for `hours`, or until this alert resolves (None).

    What the alert list's silence actions, the alert's page and chat buttons create;
    `via` says where from (a chat account), for the reason and the alert's timeline.
    Raises `ValidationError` as `silence_create` does (e.g. "until it resolves" on a
    resolved alert).
    """
    now = now or timezone.now()
    reason = f"Silenced from {via} by {by}: {alert}"
    ends_at = now + timedelta(hours=hours) if hours else None
    with transaction.atomic():
        silence = silence_create(
            # The alert's name can be long: the reason column is not.
            reason=reason[: Silence._meta.get_field("reason").max_length],
            created_by=by,
            sources=[alert.source],
            rules=[alert.rule],
            starts_at=now,
            ends_at=ends_at,
            alert=None if hours else alert,
            now=now,
        )
        AlertTransition.objects.create(
            alert=alert, at=now, kind=AlertTransition.Kind.SILENCED, severity=alert.severity,
            value=alert.value, actor=by if by.pk is not None else None,  # type: ignore[misc]
            details={
                "silence": silence.pk,
                "until": ends_at.isoformat() if ends_at else "resolved",
                "via": via,
            },
        )  # fmt: skip
    return silence


def silence_expire(
    *, silence_id: int, by: AbstractBaseUser | None, now: datetime | None = None
) -> Silence:
    """End a silence now, by hand; `SilenceOver` if it has ended already.

    Raises `Silence.DoesNotExist` for an unknown id.
    """
    now = now or timezone.now()
    with transaction.atomic():
        silence = (
            # Lock the silence only: its alert's row belongs to the lifecycle.
            Silence.objects.select_for_update(of=("self",))
            .select_related("alert")
            .get(pk=silence_id)
        )
        if (
            silence.expired_at is not None
            or (silence.ends_at is not None and silence.ends_at <= now)
            or (silence.alert is not None and not silence.alert.is_open)
        ):
            raise SilenceOver(f"Silence {silence_id} is over already.")
        silence.expired_at = now
        silence.full_clean()
        silence.save(update_fields=["expired_at"])
    logger.info("silence %s expired by %s", silence_id, by)
    return silence


# --- the silences in force ----------------------------------------------------------


@dataclass(frozen=True)
class SilenceMatcher:
    """An active silence, in memory: what it matches (an empty set matches all)."""

    min_severity: int
    source_ids: frozenset[int]
    tag_ids: frozenset[int]
    rule_ids: frozenset[int]

    def matches(self, *, severity: int, source_id: int, tag_ids: set[int], rule_id: int) -> bool:
        return (
            severity >= self.min_severity
            and (not self.source_ids or source_id in self.source_ids)
            and (not self.tag_ids or not self.tag_ids.isdisjoint(tag_ids))
            and (not self.rule_ids or rule_id in self.rule_ids)
        )


def active_silences(now: datetime) -> list[SilenceMatcher]:
    """The silences in force at `now` (one query on PostgreSQL, four elsewhere)."""
    if connection.vendor == "postgresql":
        return _active_silences_sql(now)
    return _active_silences_orm(now)


def _in_force(now: datetime) -> QuerySet[Silence]:
    """Silences in force at `now`, with what they match (the SQL below says the same)."""
    return (
        Silence.objects.filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now),
            starts_at__lte=now,
            expired_at__isnull=True,
        )
        .filter(Q(alert__isnull=True) | Q(alert__state__in=["pending", "firing"]))
        .prefetch_related("sources", "tags", "rules")
    )


def _matcher(silence: Silence) -> SilenceMatcher:
    """What a silence loaded by `_in_force` matches."""
    return SilenceMatcher(
        min_severity=silence.min_severity,
        source_ids=frozenset(s.pk for s in silence.sources.all()),
        tag_ids=frozenset(t.pk for t in silence.tags.all()),
        rule_ids=frozenset(r.pk for r in silence.rules.all()),
    )


def _active_silences_orm(now: datetime) -> list[SilenceMatcher]:
    return [_matcher(silence) for silence in _in_force(now)]


def alert_silences(alert: Alert, *, now: datetime | None = None) -> list[Silence]:
    """The silences in force that hold the alert's notifications back, ending soonest first.

    The same match as `is_silenced`, which the lifecycle asks, but naming the silences so
    a person sees which and until when. At most five queries, whatever the alert.
    """
    now = now or timezone.now()
    in_force = list(_in_force(now))
    if not in_force:
        return []
    tag_ids = set(alert.source.tags.values_list("id", flat=True))
    muting = [
        silence
        for silence in in_force
        if _matcher(silence).matches(
            severity=alert.severity, source_id=alert.source_id, tag_ids=tag_ids,
            rule_id=alert.rule_id,
        )
    ]  # fmt: skip
    # "Until it resolves" (no end) last: a time is what a person reads first.
    return sorted(muting, key=lambda s: (s.ends_at is None, s.ends_at or now, s.pk))


def _column_of(field: Field[Any, Any] | ForeignObjectRel) -> str:
    if not isinstance(field, Field):  # a reverse relation: no column of its own
        raise TypeError(f"{field} has no column")
    return str(field.column)


def _active_silences_sql(now: datetime) -> list[SilenceMatcher]:
    # Read on every breach, often right in an ingestion request: one round trip, and
    # no ORM query to build (which cost more than running it).
    members = []
    for relation, member in (
        (Silence.sources, "source"),
        (Silence.tags, "tag"),
        (Silence.rules, "rule"),
    ):
        meta = relation.through._meta
        column, owner = (_column_of(meta.get_field(name)) for name in (member, "silence"))
        members.append(f"ARRAY(SELECT {column} FROM {meta.db_table} WHERE {owner} = s.id)")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.min_severity, {', '.join(members)} FROM {Silence._meta.db_table} s "
            f"LEFT JOIN {Alert._meta.db_table} a ON a.id = s.alert_id "
            "WHERE s.starts_at <= %s AND (s.ends_at IS NULL OR s.ends_at > %s) "
            "AND s.expired_at IS NULL AND (s.alert_id IS NULL OR a.state = ANY(%s))",
            [now, now, [str(Alert.State.PENDING), str(Alert.State.FIRING)]],
        )
        return [
            SilenceMatcher(
                min_severity=min_severity,
                source_ids=frozenset(source_ids),
                tag_ids=frozenset(tag_ids),
                rule_ids=frozenset(rule_ids),
            )
            for min_severity, source_ids, tag_ids, rule_ids in cursor.fetchall()
        ]


def is_silenced(
    alert: Alert,
    now: datetime,
    silences: Sequence[SilenceMatcher] | None = None,
    *,
    tag_ids: frozenset[int] | None = None,
) -> bool:
    """Whether an active silence matches the alert (source, its tags, rule, severity)."""
    if silences is None:
        silences = active_silences(now)
    if not silences:
        return False
    if tag_ids is None:
        tag_ids = frozenset(alert.source.tags.values_list("id", flat=True))
    return any_matches(silences, alert.severity, alert.source_id, tag_ids, alert.rule_id)


def any_matches(
    silences: Sequence[SilenceMatcher],
    severity: int,
    source_id: int,
    tag_ids: frozenset[int],
    rule_id: int,
) -> bool:
    tags = set(tag_ids)
    return any(
        silence.matches(severity=severity, source_id=source_id, tag_ids=tags, rule_id=rule_id)
        for silence in silences
    )
