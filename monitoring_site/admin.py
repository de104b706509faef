"""Admin pages that show several apps at once, registered by the project."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from metrics.admin import SourceAdmin
from metrics.models import Source

from .source_page import source_page


@admin.register(Source)
class SourcePageAdmin(SourceAdmin):
    """A source's page: its fields and API keys, with its health, latest snapshot and
    open alerts (`source_page`)."""

    def page_context(self, request: HttpRequest, source: Source) -> dict[str, Any]:
        return {**super().page_context(request, source), **source_page(source)}
