"""Admin for sources and their API keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from rest_framework_api_key.models import APIKey

from core.audit_admin import AuditHistoryAdmin

from .models import Expectation, Schedule, Source, SourceAPIKey, Tag, TradingControl
from .schedules import ScheduleState, schedule_state, timetable_of, when_text
from .services import api_keys_revoke, sources_enabled_set

# The library's own key model is unused: every key here belongs to a source.
admin.site.unregister(APIKey)


@admin.register(Tag)
class TagAdmin(AuditHistoryAdmin[Tag]):
    search_fields = ["name"]


@admin.register(Schedule)
class ScheduleAdmin(AuditHistoryAdmin[Schedule]):
    """Schedules, each with whether it is open now and its next open and close."""

    list_display = ["name", "kind", "described", "open_now", "next_open", "next_close"]
    list_filter = ["kind"]
    search_fields = ["name", "description", "exchange"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "description"]}),
        ("Exchange", {"fields": ["exchange"]}),
        ("Weekly windows", {"fields": ["timezone", "windows"]}),
        (None, {"fields": ["invert"]}),
        ("Now", {"fields": ["state_now", "sessions_ahead"]}),
    ]
    readonly_fields = ["state_now", "sessions_ahead"]

    def _state(self, schedule: Schedule) -> ScheduleState:
        # Cheap: exchange sessions are read once per process, weekly windows are plain.
        now = timezone.now()
        return schedule_state(timetable_of(schedule, now=now), now)

    @admin.display(description="when")
    def described(self, schedule: Schedule) -> str:
        return self._state(schedule).describe

    @admin.display(description="open now", boolean=True)
    def open_now(self, schedule: Schedule) -> bool:
        return self._state(schedule).open

    @admin.display(description="next open")
    def next_open(self, schedule: Schedule) -> str:
        return when_text(self._state(schedule).next_open, timezone.now())

    @admin.display(description="next close")
    def next_close(self, schedule: Schedule) -> str:
        return when_text(self._state(schedule).next_close, timezone.now())

    @admin.display(description="now")
    def state_now(self, schedule: Schedule) -> str:
        if schedule.pk is None:
            return "Save the schedule to see when it opens and closes."
        state = self._state(schedule)
        now = timezone.now()
        return (
            f"{'Open' if state.open else 'Closed'} now ({state.describe}). "
            f"Next open: {when_text(state.next_open, now)}. "
            f"Next close: {when_text(state.next_close, now)}."
        )

    @admin.display(description="open during the next 7 days")
    def sessions_ahead(self, schedule: Schedule) -> str:
        if schedule.pk is None:
            return "—"
        now = timezone.now()
        spans = timetable_of(schedule, now=now).sessions_between(now, now + timedelta(days=7))
        if not spans:
            return "Closed all week."
        return format_html_join(
            mark_safe("<br>"),
            "{} to {}",
            (
                (
                    timezone.localtime(start).strftime("%a %Y-%m-%d %H:%M"),
                    timezone.localtime(end).strftime("%a %H:%M %Z"),
                )
                for start, end in spans[:20]
            ),
        )


class ExpectationInline(admin.TabularInline[Expectation, Source]):
    """Alive but not trading: the source's decisions, orders, market data, rejects."""

    model = Expectation
    extra = 0
    fields = ["signal", "grace", "schedule", "enabled"]
    autocomplete_fields = ["schedule"]
    verbose_name = "expectation (alive but not trading)"


# Registered by the project (`monitoring_site.admin`): a source's page also shows its
# health and open alerts, which are not metrics' to read.
class SourceAdmin(AuditHistoryAdmin[Source]):
    list_display = [
        "name", "kind", "enabled", "tag_list", "heartbeat_period", "schedule", "updated_at",
    ]  # fmt: skip
    list_filter = ["kind", "enabled", "tags", "schedule"]
    search_fields = ["name", "description"]
    filter_horizontal = ["tags"]
    autocomplete_fields = ["schedule"]
    inlines = [ExpectationInline]
    change_form_template = "admin/metrics/source/change_form.html"
    actions = ["issue_api_key", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "tags", "description", "enabled"]}),
        ("Heartbeat", {"fields": ["heartbeat_period", "heartbeat_grace", "schedule"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Source]:
        return super().get_queryset(request).prefetch_related("tags")

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:source_id>/keys/new/",
                self.admin_site.admin_view(self.key_issue_view),
                name="metrics_source_key_issue",
            ),
            path(
                "<int:source_id>/keys/<str:prefix>/revoke/",
                self.admin_site.admin_view(self.key_revoke_view),
                name="metrics_source_key_revoke",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        context = dict(extra_context or {})
        source = self.get_object(request, object_id)
        if source is not None:
            context.update(self.page_context(request, source))
        return super().change_view(request, object_id, form_url, context)

    def page_context(self, request: HttpRequest, source: Source) -> dict[str, Any]:
        """What the source's page shows beside its fields."""
        return {"can_manage_keys": request.user.has_perm("metrics.add_sourceapikey")}

    @method_decorator(require_POST)
    def key_issue_view(self, request: HttpRequest, source_id: int) -> HttpResponse:
        """Create a key and show it on this one answer: only its hash is kept."""
        if not request.user.has_perm("metrics.add_sourceapikey"):
            raise PermissionDenied
        source = get_object_or_404(Source, pk=source_id)
        name = request.POST.get("name", "").strip()[:50] or f"issued by {request.user}"
        api_key, key = source.issue_api_key(name=name)
        context = {
            **self.admin_site.each_context(request),
            "title": f"New API key for {source.name}",
            "opts": self.opts,
            "source": source,
            "api_key": api_key,
            "key": key,
        }
        response = TemplateResponse(request, "admin/metrics/source/key_issued.html", context)
        # Never kept by a browser or proxy cache: the key is shown this once.
        add_never_cache_headers(response)
        return response

    @method_decorator(require_POST)
    def key_revoke_view(self, request: HttpRequest, source_id: int, prefix: str) -> HttpResponse:
        """Revoke one key of the source (named by its public prefix) for good."""
        if not request.user.has_perm("metrics.change_sourceapikey"):
            raise PermissionDenied
        revoked = api_keys_revoke(
            keys=SourceAPIKey.objects.filter(prefix=prefix, source_id=source_id)
        )
        if revoked:
            self.message_user(request, "The key is revoked: requests with it are refused now.")
        return HttpResponseRedirect(reverse("admin:metrics_source_change", args=[source_id]))

    @admin.display(description="tags")
    def tag_list(self, source: Source) -> str:
        return ", ".join(tag.name for tag in source.tags.all())

    @admin.action(description="Issue a new API key (shown once)", permissions=["change"])
    def issue_api_key(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            _, key = source.issue_api_key(name=f"issued by {request.user}")
            self.message_user(
                request,
                f"New API key for {source.name}: {key} — store it now, it is not shown again.",
                messages.WARNING,
            )

    @admin.action(description="Enable selected sources", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        updated = sources_enabled_set(sources=queryset, enabled=True)
        self.message_user(request, f"{updated} source(s) enabled.")

    @admin.action(
        description="Disable selected sources (their keys are refused)", permissions=["change"]
    )
    def disable(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        updated = sources_enabled_set(sources=queryset, enabled=False)
        self.message_user(request, f"{updated} source(s) disabled: their keys are refused now.")


@admin.register(SourceAPIKey)
class SourceAPIKeyAdmin(admin.ModelAdmin[SourceAPIKey]):
    list_display = ["prefix", "source", "name", "created", "expiry_date", "revoked"]
    list_filter = ["revoked", "source"]
    list_select_related = ["source"]
    search_fields = ["name", "prefix", "source__name"]
    autocomplete_fields = ["source"]
    actions = ["revoke"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: SourceAPIKey | None = None
    ) -> list[str]:
        if obj is None:
            return ["prefix"]
        # A key never moves to another source, and a revoked key stays revoked.
        fields = ["prefix", "source"]
        return [*fields, "name", "revoked", "expiry_date"] if obj.revoked else fields

    def save_model(
        self, request: HttpRequest, obj: SourceAPIKey, form: object, change: bool
    ) -> None:
        if change:
            obj.save()
            return
        key = SourceAPIKey.objects.assign_key(obj)
        obj.save()
        self.message_user(
            request,
            f"New API key for {obj.source.name}: {key} — store it now, "
            "you will not be able to see it again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys (cannot be undone)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[SourceAPIKey]) -> None:
        updated = api_keys_revoke(keys=queryset)
        self.message_user(request, f"{updated} key(s) revoked: requests with them are refused now.")


@admin.register(TradingControl)
class TradingControlAdmin(AuditHistoryAdmin[TradingControl]):
    """Every control ever set, read-only: changes go through Halt / Reduce only / Re-arm
    (the dashboard, a source's or an alert's page, the sources list), which ask for a
    note and check who may loosen; the History link shows every change."""

    list_display = [
        "target", "state", "reason", "set_by", "set_by_rule", "set_via", "alert_id", "set_at",
        "expires_at",
    ]  # fmt: skip
    list_filter = ["state", "scope", "set_via"]
    list_select_related = ["source", "tag", "set_by"]
    search_fields = ["reason", "source__name", "tag__name", "set_by_rule"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
