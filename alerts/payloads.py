"""The alert as notifications carry it: the SPEC's webhook payload, built from plain values."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from .models import Alert, Severity


def alert_url(alert_id: int) -> str:
    """The alert's page in the admin, as operators reach Tradewatch."""
    path = reverse("admin:alerts_alert_change", args=[alert_id])
    return settings.TRADEWATCH_PUBLIC_URL.rstrip("/") + path


def alert_payload(alert: Alert, *, rule_name: str, source_name: str) -> dict[str, Any]:
    """id, fingerprint, rule, source, severity, status, value, threshold, message, ..."""
    return {
        "id": alert.pk,
        "fingerprint": alert.fingerprint,
        "rule": rule_name,
        "source": source_name,
        "labels": alert.labels,
        "severity": Severity(alert.severity).label.upper(),
        "status": alert.state,
        "acknowledged": alert.acknowledged_at is not None,
        "value": alert.value,
        "threshold": alert.threshold_value,
        "comparison": alert.comparison,
        "message": alert.message,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "count": alert.count,
        "url": alert_url(alert.pk),
    }


def notification_test_payload(*, severity: int, message: str) -> dict[str, Any]:
    """What a test notification says: shaped like an alert so receivers parse it alike."""
    from django.utils import timezone

    now = timezone.now().isoformat()
    return {
        "id": None,
        "fingerprint": "test",
        "rule": "Test notification",
        "source": "tradewatch",
        "labels": {},
        "severity": Severity(severity).label.upper(),
        "status": "test",
        "acknowledged": False,
        "value": None,
        "threshold": None,
        "comparison": "",
        "message": message,
        "first_seen": now,
        "last_seen": now,
        "count": 1,
        "url": settings.TRADEWATCH_PUBLIC_URL.rstrip("/") + reverse("admin:index"),
    }
