"""The project's URLs plus an API view that fails, for the JSON error tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from monitoring_site.urls import urlpatterns as project_urlpatterns


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


urlpatterns = [path("api/v1/test-explode/", explode), *project_urlpatterns]
