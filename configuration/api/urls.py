"""URLs of the configuration API, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import files

urlpatterns = [
    path("config/apply", files.ConfigApplyApi.as_view(), name="config-apply"),
    path("config/export", files.ConfigExportApi.as_view(), name="config-export"),
]
