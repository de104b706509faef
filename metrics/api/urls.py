from __future__ import annotations

from django.urls import path

from . import control, views

urlpatterns = [
    path("metrics", views.MetricsIngestView.as_view(), name="ingest-metrics"),
    path("trades", views.TradesIngestView.as_view(), name="ingest-trades"),
    path("heartbeat", views.HeartbeatView.as_view(), name="ingest-heartbeat"),
    path("events", views.EventsIngestView.as_view(), name="ingest-events"),
    *[
        path(f"hooks/{kind}/<str:token>/", views.hook_view(kind), name=f"hook-{kind}")
        for kind in views.HOOK_VIEWS
    ],
    path("whoami", views.WhoAmIView.as_view(), name="whoami"),
    path("control", control.ControlView.as_view(), name="trading-control"),
]
