"""Creating and ending silences: maintenance windows that hold notifications back.

A silence matches alerts by source, tag of the source, rule and minimum severity (an
empty set matches every one) from `starts_at` until `ends_at`, or until a given alert
resolves. `alerts.lifecycle` reads the silences in force when it records a
transition; nothing here touches alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from metrics.models import Source, Tag

from .models import Alert, Rule, Severity, Silence

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
