"""URLs of the operator read endpoints, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import reads

urlpatterns = [
    path(
        "sources/<int:source_id>/snapshot",
        reads.SourceSnapshotView.as_view(),
        name="source-snapshot",
    ),
    path("metrics/query", reads.MetricQueryView.as_view(), name="metric-query"),
]
