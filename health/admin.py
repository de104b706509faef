"""Admin for health records."""

from __future__ import annotations

from django.contrib import admin

from .models import ProcessHeartbeat


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["role", "name", "last_seen"]
    list_filter = ["role"]
    readonly_fields = ["role", "name", "last_seen"]

    def has_add_permission(self, request: object) -> bool:
        return False
