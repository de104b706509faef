"""Top-level URLs: the admin, the API, its schema and the probes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from configuration.views import config_schema_view
from core.api_errors import api_not_found
from metrics.prometheus import prometheus_metrics

from . import probes
from .api_index import ApiIndexView
from .stream_api import StreamView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", ApiIndexView.as_view(), name="api-index"),
    path("api/v1/", include("metrics.api.urls")),
    path("api/v1/", include("metrics.api.read_urls")),
    path("api/v1/", include("alerts.api.urls")),
    path("api/v1/", include("chat.urls")),
    path("api/v1/", include("health.api.urls")),
    path("api/v1/", include("configuration.api.urls")),
    path("api/v1/stream", StreamView.as_view(), name="event-stream"),
    # Last of the API: a URL that names no endpoint (or an id that is not a number)
    # answers JSON like every other API error, not Django's HTML page.
    re_path(r"^api/v1/", api_not_found),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/config.json", config_schema_view, name="config-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", prometheus_metrics, name="prometheus-metrics"),
]
