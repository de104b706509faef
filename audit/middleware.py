"""Who made a change: the request's user and path, attached to the audit triggers' events."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from pghistory.middleware import HistoryMiddleware


class AuditContextMiddleware(HistoryMiddleware):
    """Record the user behind configuration changes made in the admin and operator API.

    pghistory passes the context to the triggers by prefixing each write statement
    with a `set_config` call. Ingestion (sources posting samples) never changes
    configuration, so its requests are left alone: nothing is added to the hottest
    path. SQLite has neither triggers nor `set_config`, so the embedded mode skips it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self.enabled = connection.vendor == "postgresql"

    @cached_property
    def audited_prefixes(self) -> tuple[str, ...]:
        return (
            reverse("admin:index"),
            reverse("alert-list"),
            reverse("silence-list"),
            reverse("config-apply").removesuffix("apply"),  # the configuration API
        )

    def get_context(self, request: HttpRequest) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context["username"] = user.get_username()
        return context

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse
        if self.enabled and request.path.startswith(self.audited_prefixes):
            response = super().__call__(request)
        else:
            response = self.get_response(request)
        return response
