"""Admin for rules, thresholds, alerts and silences (the operator's daily tools)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import engine
from .models import Alert, AlertTransition, Rule, Silence, Threshold, ThresholdOverride


class ThresholdFormSet(forms.BaseInlineFormSet):
    """Refuse thresholds that contradict each other, naming them (the engine's check)."""

    def clean(self) -> None:
        super().clean()
        thresholds = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or data.get("value") is None:
                continue
            try:
                thresholds.append(
                    engine.Threshold(
                        severity=engine.Severity(data["severity"]),
                        comparison=engine.Comparison(data["comparison"]),
                        value=data["value"],
                        clear_value=data.get("clear_value"),
                    )
                )
            except ValueError as exc:
                raise forms.ValidationError(f"Threshold {data['severity']}: {exc}") from None
        if not thresholds:
            return
        try:
            engine.check_monotonic(
                engine.RuleSpec(kind=engine.RuleKind.THRESHOLD, thresholds=tuple(thresholds))
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)[:1].upper() + str(exc)[1:] + ".") from None


class ThresholdInline(admin.TabularInline):
    model = Threshold
    formset = ThresholdFormSet
    extra = 0
    fields = ["severity", "comparison", "value", "clear_value"]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "metric", "aggregation", "window", "scope", "enabled", "pack"]
    list_filter = ["enabled", "kind", "scope", "pack"]
    search_fields = ["name", "metric", "description"]
    autocomplete_fields = ["source", "tag"]
    inlines = [ThresholdInline]
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "kind", "metric", "labels"]}),
        ("Window", {"fields": ["aggregation", "window", "change_percent", "min_samples"]}),
        ("Sources", {"fields": ["scope", "source", "tag"]}),
        (
            "Timing and noise",
            {
                "fields": [
                    "for_duration", "keep_firing_for", "m_of_n_m", "m_of_n_n",
                    "missing_data", "guard_metric", "guard_minimum", "inhibited_by",
                ]
            },
        ),
        ("Message", {"fields": ["message_template", "pack"]}),
    ]  # fmt: skip
    readonly_fields = ["pack"]


@admin.register(ThresholdOverride)
class ThresholdOverrideAdmin(admin.ModelAdmin):
    list_display = ["threshold", "source", "value", "clear_value", "enabled"]
    list_select_related = ["threshold__rule", "source"]
    autocomplete_fields = ["source"]
    list_filter = ["enabled"]


class TimelineInline(admin.TabularInline):
    model = AlertTransition
    extra = 0
    can_delete = False
    fields = ["at", "kind", "severity", "value", "actor", "notify", "silenced", "details"]
    readonly_fields = ["at", "kind", "severity", "value", "actor", "notify", "silenced", "details"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "id", "severity", "state", "rule", "source", "value", "peak_value", "count",
        "first_seen", "last_seen", "acknowledged_by", "inhibited",
    ]  # fmt: skip
    list_filter = ["state", "severity", "inhibited", "rule"]
    list_select_related = ["rule", "source", "acknowledged_by"]
    search_fields = ["message", "source__name", "rule__name", "fingerprint"]
    date_hierarchy = "first_seen"
    # A million rows: no exact count on every page.
    show_full_result_count = False
    inlines = [TimelineInline]
    readonly_fields = [field.name for field in Alert._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return super().get_queryset(request)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["reason", "starts_at", "ends_at", "alert", "min_severity", "created_by"]
    list_filter = ["min_severity"]
    filter_horizontal = ["sources", "tags", "rules"]
    search_fields = ["reason"]
    raw_id_fields = ["alert"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
