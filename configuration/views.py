"""`GET /api/schema/config.json`: the configuration file's JSON Schema, for editors."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .schema import config_schema_text


@require_GET
def config_schema_view(request: HttpRequest) -> HttpResponse:
    """The schema the repository ships; no credentials (it says nothing of the data)."""
    response = HttpResponse(config_schema_text(), content_type="application/schema+json")
    response["Cache-Control"] = "public, max-age=300"
    return response
