"""Admin for sources and their API keys."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework_api_key.models import APIKey

from .models import Source, SourceAPIKey, Tag

# The library's own key model is unused: every key here belongs to a source.
admin.site.unregister(APIKey)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class SourceAPIKeyInline(admin.TabularInline):
    model = SourceAPIKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["name", "prefix", "created", "expiry_date", "revoked"]
    readonly_fields = ["name", "prefix", "created", "expiry_date", "revoked"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # New keys go through the action or the key admin, which show the key once.
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "tag_list", "heartbeat_period", "updated_at"]
    list_filter = ["kind", "enabled", "tags"]
    search_fields = ["name", "description"]
    filter_horizontal = ["tags"]
    inlines = [SourceAPIKeyInline]
    actions = ["issue_api_key", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "tags", "description", "enabled"]}),
        ("Heartbeat", {"fields": ["heartbeat_period", "heartbeat_grace"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Source]:
        return super().get_queryset(request).prefetch_related("tags")

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
        updated = queryset.update(enabled=True)
        self.message_user(request, f"{updated} source(s) enabled.")

    @admin.action(
        description="Disable selected sources (their keys are refused)", permissions=["change"]
    )
    def disable(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        updated = queryset.update(enabled=False)
        self.message_user(request, f"{updated} source(s) disabled.")


@admin.register(SourceAPIKey)
class SourceAPIKeyAdmin(admin.ModelAdmin):
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
        updated = queryset.filter(revoked=False).update(revoked=True)
        self.message_user(request, f"{updated} key(s) revoked.")
