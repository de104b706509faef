"""Admin pages that show several apps at once, registered by the project."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from alerts.control import Target
from metrics.admin import SourceAdmin
from metrics.control import states_of
from metrics.models import Source

from .source_page import source_page
from .trading_control_page import control_url


@admin.register(Source)
class SourcePageAdmin(SourceAdmin):
    """A source's page: its fields and API keys, with its health, latest snapshot and
    open alerts (`source_page`)."""

    actions = [*SourceAdmin.actions, "halt", "reduce_only", "rearm"]

    list_display = [*SourceAdmin.list_display, "trading_state"]

    @admin.display(description="Trading")
    def trading_state(self, source: Source) -> str:
        return str(states_of([source.pk])[source.pk].state).replace("_", " ")

    def page_context(self, request: HttpRequest, source: Source) -> dict[str, Any]:
        back = request.get_full_path()
        target = Target.of_source(source)
        return {
            **super().page_context(request, source),
            **source_page(source),
            "trading": states_of([source.pk])[source.pk],
            "can_halt": request.user.has_perm("metrics.halt"),
            "can_rearm": request.user.has_perm("metrics.rearm"),
            "control_urls": {
                verb: control_url(state, target, back=back)
                for verb, state in (
                    ("halt", "halted"),
                    ("reduce", "reduce_only"),
                    ("rearm", "active"),
                )
            },
        }

    def _one_source(
        self, request: HttpRequest, queryset: QuerySet[Source], state: str
    ) -> HttpResponse | None:
        """Actions act on one source at a time (each change needs its own note)."""
        if queryset.count() != 1:
            self.message_user(
                request,
                "Select one source (or use a tag's or the global control).",
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(
            control_url(state, Target.of_source(queryset.get()), back=request.get_full_path())
        )

    @admin.action(description="Halt the selected source (with a note)", permissions=["halt"])
    def halt(self, request: HttpRequest, queryset: QuerySet[Source]) -> HttpResponse | None:
        return self._one_source(request, queryset, "halted")

    @admin.action(
        description="Reduce only: the selected source (with a note)", permissions=["halt"]
    )
    def reduce_only(self, request: HttpRequest, queryset: QuerySet[Source]) -> HttpResponse | None:
        return self._one_source(request, queryset, "reduce_only")

    @admin.action(description="Re-arm the selected source (with a note)", permissions=["rearm"])
    def rearm(self, request: HttpRequest, queryset: QuerySet[Source]) -> HttpResponse | None:
        return self._one_source(request, queryset, "active")

    def has_halt_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("metrics.halt"))

    def has_rearm_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("metrics.rearm"))
