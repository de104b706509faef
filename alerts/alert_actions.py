"""What a person does to an alert (in the admin, the operator API or a chat button),
and the resolve of an alert its rule no longer judges: each locks the alert, changes
it and records the transition in one transaction."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .kept_resolved import kept_resolved_mark
from .lifecycle import Kind, alert_close, transition_record
from .models import Alert


class AlertClosed(Exception):
    """The alert is resolved already: nothing to acknowledge or resolve."""


def alert_acknowledge(
    *,
    alert_id: int,
    by: AbstractBaseUser,
    note: str = "",
    until: datetime | None = None,
    now: datetime | None = None,
) -> Alert:
    """A person takes the alert: repeats stop until `until` (or until it resolves)."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",)).select_related("source").get(pk=alert_id)
        )
        if not alert.is_open:
            raise AlertClosed(f"Alert {alert_id} is resolved.")
        if until is not None and until <= now:
            raise ValueError("The acknowledgement must last beyond now.")
        alert.acknowledged_by = by  # type: ignore[assignment]
        alert.acknowledged_at = now
        alert.acknowledged_until = until
        alert.acknowledgement_note = note[:1000]
        transition_record(
            alert,
            Kind.ACKNOWLEDGED,
            now,
            actor=by,
            details={"note": note, "until": until and until.isoformat()},
        )
        alert.save(
            update_fields=[
                "acknowledged_by", "acknowledged_at", "acknowledged_until",
                "acknowledgement_note", "last_notified_at",
            ]
        )  # fmt: skip
    return alert


def alert_resolve(
    *, alert_id: int, by: AbstractBaseUser, note: str = "", now: datetime | None = None
) -> Alert:
    """A person closes the alert; if the condition still holds, a new alert opens later."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("source", "rule")
            .get(pk=alert_id)
        )
        if not alert.is_open:
            raise AlertClosed(f"Alert {alert_id} is resolved already.")
        kept_resolved_mark(alert)
        return alert_close(
            alert, now, resolution=Alert.Resolution.BY_PERSON, by=by, details={"note": note}
        )


def alert_resolve_obsolete(*, alert_id: int, now: datetime | None = None) -> Alert | None:
    """Resolve an open alert whose rule no longer judges its source (disabled, rescoped)."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("source")
            .filter(pk=alert_id, state__in=[Alert.State.PENDING, Alert.State.FIRING])
            .first()
        )
        if alert is None:
            return None
        return alert_close(alert, now, resolution=Alert.Resolution.RULE_CHANGED)
