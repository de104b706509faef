"""URLs of the operator health API, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("health/status", views.HealthStatusApi.as_view(), name="health-status"),
    path("health/safety", views.HealthSafetyApi.as_view(), name="health-safety"),
]
