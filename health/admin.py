"""Admin for health: checks with their latest result, and their reports."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.audit_admin import AuditHistoryAdmin

from .models import HealthCheck, HealthReport, ProcessHeartbeat
from .runner import breaker_reset, checks_run
from .scoring import Status

# Badge colours by status: the admin's own palette, readable in light and dark themes.
COLOURS = {
    Status.HEALTHY: "#2e7d32",
    Status.DEGRADED: "#b26a00",
    Status.UNHEALTHY: "#c62828",
    Status.CRITICAL: "#6a1b9a",
    Status.UNKNOWN: "#616161",
}
# The admin's "run now" probes in the request: keep it to a handful of checks.
RUN_NOW_LIMIT = 20


def badge(status: str) -> SafeString:
    value = Status(status)
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 6px;border-radius:3px">{}</span>',
        COLOURS[value],
        value.label,
    )


@admin.register(ProcessHeartbeat)
class ProcessHeartbeatAdmin(admin.ModelAdmin[ProcessHeartbeat]):
    list_display = ["role", "name", "last_seen"]
    list_filter = ["role"]
    readonly_fields = ["role", "name", "last_seen"]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(HealthCheck)
class HealthCheckAdmin(AuditHistoryAdmin[HealthCheck]):
    list_display = [
        "name", "kind", "source", "status_badge", "last_score", "latency", "breaker",
        "last_run_at", "last_summary", "enabled",
    ]  # fmt: skip
    list_filter = ["kind", "status", "breaker", "enabled"]
    search_fields = ["name", "source__name"]
    list_select_related = ["source"]
    actions = ["run_now", "reset_breaker"]
    autocomplete_fields = ["source"]
    readonly_fields = [
        "status", "observed_status", "status_changed_at", "consecutive_failures",
        "consecutive_successes", "breaker", "breaker_failures", "breaker_opened_at",
        "next_run_at", "lease_until", "last_run_at", "last_score", "last_latency_ms",
        "last_summary", "created_at", "updated_at",
    ]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["name", "kind", "source", "config", "enabled"]}),
        ("Schedule", {"fields": ["interval", "timeout"]}),
        ("Flap damping", {"fields": ["failures_to_unhealthy", "successes_to_recover"]}),
        ("Circuit breaker", {"fields": ["breaker_threshold", "breaker_retry"]}),
        ("Recovery", {"fields": ["recovery_action", "recover_when"]}),
        ("State", {"fields": list(readonly_fields)}),
    ]

    @admin.display(description="status", ordering="status")
    def status_badge(self, check: HealthCheck) -> SafeString:
        return badge(check.status)

    @admin.display(description="latency", ordering="last_latency_ms")
    def latency(self, check: HealthCheck) -> str:
        return "" if check.last_latency_ms is None else f"{check.last_latency_ms:.0f} ms"

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[HealthCheck]) -> None:
        ids = list(queryset.values_list("id", flat=True)[: RUN_NOW_LIMIT + 1])
        if len(ids) > RUN_NOW_LIMIT:
            self.message_user(
                request, f"Select at most {RUN_NOW_LIMIT} checks to run now.", messages.WARNING
            )
            return
        summary = checks_run(check_ids=ids)
        for outcome in summary.outcomes:
            level = messages.SUCCESS if outcome.status is Status.HEALTHY else messages.WARNING
            result = outcome.result
            why = f" ({result.summary()})" if result.issues or result.warnings else ""
            self.message_user(request, f"{outcome.name}: {outcome.status.label}{why}", level)
        skipped = len(ids) - summary.ran
        if skipped:
            self.message_user(
                request, f"{skipped} check(s) were running elsewhere and were left alone."
            )

    @admin.action(description="Reset circuit breaker", permissions=["reset_breaker"])
    def reset_breaker(self, request: HttpRequest, queryset: QuerySet[HealthCheck]) -> None:
        reset = breaker_reset(check_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Closed the circuit breaker of {reset} check(s).")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("health.run_healthcheck"))

    def has_reset_breaker_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("health.reset_breaker"))


@admin.register(HealthReport)
class HealthReportAdmin(admin.ModelAdmin[HealthReport]):
    list_display = [
        "created_at", "health_check", "status_badge", "check_status", "score", "latency_ms",
        "breaker", "summary",
    ]  # fmt: skip
    list_filter = ["status", "check_status", "health_check__kind"]
    search_fields = ["health_check__name"]
    list_select_related = ["health_check"]
    date_hierarchy = "created_at"
    # A count over millions of reports costs more than the page itself.
    show_full_result_count = False
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in HealthReport._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, report: HealthReport) -> SafeString:
        return badge(report.status)

    @admin.display(description="issues and warnings")
    def summary(self, report: HealthReport) -> str:
        return "; ".join([*report.issues, *report.warnings])[:200]
