"""URLs of the operator read endpoints, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import reads, schedules

urlpatterns = [
    path(
        # An id or a name (`metrics.queries.source_find`).
        "sources/<str:source>/snapshot",
        reads.SourceSnapshotView.as_view(),
        name="source-snapshot",
    ),
    path("metrics/query", reads.MetricQueryView.as_view(), name="metric-query"),
    path("schedules", schedules.SchedulesView.as_view(), name="schedule-list"),
    path("metrics/realtime", reads.RealtimeView.as_view(), name="metrics-realtime"),
]
