"""URLs of the configuration API, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import files, objects

urlpatterns = [
    path("config/apply", files.ConfigApplyApi.as_view(), name="config-apply"),
    path("config/export", files.ConfigExportApi.as_view(), name="config-export"),
    # Source names never hold a slash; other names may (`<path:name>`).
    path(
        "config/sources/<str:name>/keys",
        objects.SourceKeysApi.as_view(),
        name="config-source-keys",
    ),
]
for section, (list_view, detail_view) in objects.VIEWS.items():
    part = objects.url_part(section)
    urlpatterns += [
        path(f"config/{part}", list_view.as_view(), name=f"config-{part}"),
        path(f"config/{part}/<path:name>", detail_view.as_view(), name=f"config-{part}-detail"),
    ]
