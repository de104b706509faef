"""Writes on sources: creation with tags, and keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from .authentication import keys_changed
from .models import Schedule, Source, SourceAPIKey, Tag


@transaction.atomic
def source_create(
    *,
    name: str,
    kind: str = Source.Kind.BOT,
    tags: Iterable[str] = (),
    description: str = "",
    heartbeat_period: timedelta | None = None,
    heartbeat_grace: timedelta | None = None,
    schedule: str | None = None,
) -> tuple[Source, str]:
    """Create a source with its tags and a first API key; return the source and plain key.

    The heartbeat period and grace left out keep the model's defaults; `schedule`, a
    schedule's name, says when it is expected to run (None: always).
    """
    source = Source(name=name, kind=kind, description=description)
    if schedule is not None:
        found = Schedule.objects.filter(name=schedule).first()
        if found is None:
            raise ValidationError({"schedule": f"No schedule named {schedule!r}."})
        source.schedule = found
    if heartbeat_period is not None:
        source.heartbeat_period = heartbeat_period
    if heartbeat_grace is not None:
        source.heartbeat_grace = heartbeat_grace
    source.full_clean()
    source.save()
    tag_objects = []
    for tag_name in tags:
        tag = Tag(name=tag_name)
        tag.full_clean(validate_unique=False)
        tag_objects.append(Tag.objects.get_or_create(name=tag_name)[0])
    source.tags.set(tag_objects)
    _, key = source.issue_api_key(name="created with the source")
    return source, key


def source_key_issue(*, source: Source, name: str = "issued from the command line") -> str:
    """Issue one more key for `source`; earlier keys keep working until revoked."""
    _, key = source.issue_api_key(name=name)
    return key


def source_keys_revoke(*, source: Source) -> int:
    """Revoke every key of `source`; return how many were still active."""
    return api_keys_revoke(keys=SourceAPIKey.objects.filter(source=source))


@transaction.atomic
def api_keys_revoke(*, keys: QuerySet[SourceAPIKey]) -> int:
    """Revoke `keys` for good; return how many were still active.

    Every web process refuses them from its next request once this commits.
    """
    revoked = keys.filter(revoked=False).update(revoked=True)
    if revoked:
        keys_changed()
    return revoked


@transaction.atomic
def sources_enabled_set(*, sources: QuerySet[Source], enabled: bool) -> int:
    """Enable or disable `sources`; return how many rows were written.

    A disabled source's keys are refused by every web process from its next request
    once this commits.
    """
    updated = sources.update(enabled=enabled)
    if updated:
        keys_changed()
    return updated


SYSTEM_SOURCE_NAME = "tradewatch"


def system_source() -> Source:
    """The source Tradewatch reports its own problems under (delivery, health, beat)."""
    source, _ = Source.objects.get_or_create(
        name=SYSTEM_SOURCE_NAME,
        defaults={"kind": Source.Kind.SERVICE, "description": "Tradewatch itself."},
    )
    return source
