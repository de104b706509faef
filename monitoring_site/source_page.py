"""What a source's admin page shows beside its fields: its keys, health, latest snapshot
and open alerts. It reads three apps (metrics, health, alerts), so it lives with the
project rather than in any one of them."""

from __future__ import annotations

from typing import Any, Final

from django.utils import timezone

from alerts.models import Alert
from health.models import HealthCheck, HealthReport
from health.selectors import score_of, source_facts
from metrics.models import Source, SourceAPIKey
from metrics.queries import source_snapshot

HEALTH_HISTORY_LIMIT: Final = 20
OPEN_ALERTS_LIMIT: Final = 50
SNAPSHOT_METRICS_LIMIT: Final = 100


def source_page(source: Source) -> dict[str, Any]:
    """The source's keys, score, health history, snapshot and open alerts."""
    now = timezone.now()
    score = score_of(source, source_facts([source], now=now)[source.pk], now)
    check_ids = list(HealthCheck.objects.filter(source=source).values_list("pk", flat=True))
    reports = list(
        HealthReport.objects.filter(health_check_id__in=check_ids)
        .select_related("health_check")
        .order_by("-created_at")[:HEALTH_HISTORY_LIMIT]
    )
    snapshot = source_snapshot(source=source, now=now)
    return {
        "source_keys": list(
            SourceAPIKey.objects.filter(source=source).order_by("revoked", "-created")
        ),
        "source_score": score,
        "source_health_reports": reports,
        "source_snapshot": snapshot,
        "source_snapshot_metrics": snapshot["metrics"][:SNAPSHOT_METRICS_LIMIT],
        "source_open_alerts": list(
            Alert.objects.filter(source=source, state__in=[Alert.State.PENDING, Alert.State.FIRING])
            .select_related("rule")
            .order_by("-severity", "-last_seen")[:OPEN_ALERTS_LIMIT]
        ),
    }
