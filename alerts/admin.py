"""Admin for rules, thresholds, alerts and silences (the operator's daily tools)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.audit_admin import AuditHistoryAdmin
from metrics.models import Source

from .alert_actions import AlertClosed, alert_acknowledge, alert_resolve
from .alert_page_admin import AcknowledgeForm, AlertPageAdmin
from .backtest_admin import RuleBacktestAdmin
from .evaluation import rule_preview
from .models import Alert, Rule, Silence, Threshold, ThresholdOverride
from .silences import SilenceMatcher, alert_silence
from .statistics import alert_statistics
from .threshold_checks import thresholds_problem


class ThresholdFormSet(forms.BaseInlineFormSet[Threshold, Rule, forms.ModelForm[Threshold]]):
    """Refuse thresholds that contradict each other, naming them (the engine's check)."""

    def clean(self) -> None:
        super().clean()
        tiers = [
            (data["severity"], data["comparison"], data["value"], data.get("clear_value"))
            for form in self.forms
            if (data := getattr(form, "cleaned_data", None))
            and not data.get("DELETE")
            and data.get("value") is not None
        ]
        problem = thresholds_problem(tiers)
        if problem:
            raise forms.ValidationError(problem)


class ThresholdInline(admin.TabularInline[Threshold, Rule]):
    model = Threshold
    formset = ThresholdFormSet
    extra = 0
    fields = ["severity", "comparison", "value", "clear_value", "action"]


@admin.register(Rule)
class RuleAdmin(RuleBacktestAdmin, AuditHistoryAdmin[Rule]):
    list_display = [
        "name", "kind", "metric", "aggregation", "window", "scope", "schedule", "enabled", "pack",
    ]  # fmt: skip
    list_filter = ["enabled", "kind", "scope", "pack", "schedule"]
    search_fields = ["name", "metric", "description"]
    autocomplete_fields = ["source", "tag", "schedule"]
    inlines = [ThresholdInline]
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "kind", "metric", "labels"]}),
        ("Window", {"fields": ["aggregation", "window", "change_percent", "min_samples"]}),
        ("Sources", {"fields": ["scope", "source", "tag", "schedule"]}),
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
        ("Trading actions", {"fields": ["trading_actions", "what_it_does"]}),
        ("Now", {"fields": ["preview", "overrides"]}),
    ]  # fmt: skip
    readonly_fields = ["pack", "preview", "overrides", "what_it_does"]

    @admin.display(description="when it fires")
    def what_it_does(self, rule: Rule) -> str:
        if rule.pk is None:
            return "Save the rule to see what it does."
        return rule_actions_said(rule)

    def history_related(self, rule: Rule) -> list[Threshold]:
        # A threshold override points at its threshold, not at the rule.
        return list(rule.thresholds.all())

    @admin.display(description="current value per source")
    def preview(self, rule: Rule) -> str:
        if rule.pk is None:
            return "Save the rule to see what it finds."
        rows = rule_preview(rule=rule)
        if not rows:
            return "No source in the rule's scope sends this yet."
        return format_html(
            "<table><tr><th>source</th><th>labels</th><th>value</th><th>verdict</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        row.source.name,
                        ", ".join(f"{k}={v}" for k, v in row.labels.items()) or "—",
                        "—" if row.evaluation.value is None else f"{row.evaluation.value:g}",
                        row.evaluation.severity.label.upper()
                        if row.evaluation.severity is not None
                        else row.evaluation.status.replace("_", " "),
                    )
                    for row in rows
                ),
            ),
        )

    @admin.display(description="per-source overrides")
    def overrides(self, rule: Rule) -> str:
        if rule.pk is None:
            return "—"
        items = ThresholdOverride.objects.filter(threshold__rule=rule).select_related(
            "threshold", "source"
        )
        if not items:
            return "None (add them under Threshold overrides)."
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} {} {}",
            (
                (o.source.name, o.threshold.get_severity_display(), o.threshold.comparison,
                 f"{o.value:g}" if o.enabled else "(off)")
                for o in items
            ),
        )  # fmt: skip


def rule_actions_said(rule: Rule) -> str:
    """What the rule does to trading when it fires, in one plain sentence."""
    acting = [t for t in rule.thresholds.all() if t.action]
    if not acting:
        return "It only alerts: no threshold has a trading action."
    said = "; ".join(
        f"at {t.get_severity_display()} ({t.comparison} {t.value:g}) it "
        + ("halts the source" if t.action == Threshold.Action.HALT else "sets the source to "
           "reduce only")
        for t in acting
    )  # fmt: skip
    if not rule.trading_actions:
        return f"It only alerts: trading actions are off (switched on, {said})."
    return (
        f"When it fires {said}. Only ever tightens; a person with the re-arm permission "
        "re-arms, even after the alert resolves."
    )


@admin.register(ThresholdOverride)
class ThresholdOverrideAdmin(AuditHistoryAdmin[ThresholdOverride]):
    list_display = ["threshold", "source", "value", "clear_value", "enabled"]
    list_select_related = ["threshold__rule", "source"]
    autocomplete_fields = ["source"]
    list_filter = ["enabled"]


class CappedCountPaginator(Paginator[Alert]):
    """Counts at most COUNT_CAP rows: the pager then says "10000+" instead of scanning a
    million rows on every page view to print an exact total."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        # Kept in the list's order: the (last seen) index then yields rows in order
        # and the count stops at the cap after a short index walk.
        rows = cast(QuerySet[Any], self.object_list)
        return int(rows[: self.COUNT_CAP + 1].count())


class OpenFilter(admin.SimpleListFilter):
    """Open (pending or firing) by default: what an operator opens the list for."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), *Alert.State.choices, ("all", "All")]

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": (self.value() or "open") == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        value = self.value() or "open"
        if value == "open":
            return queryset.filter(state__in=[Alert.State.PENDING, Alert.State.FIRING])
        if value == "all":
            return queryset
        return queryset.filter(state=value)


@admin.register(Alert)
class AlertAdmin(AlertPageAdmin):
    """The alerts list, its filters and bulk actions; the alert's own page is `AlertPageAdmin`."""

    list_display = [
        "id", "severity_badge", "state", "rule", "source", "value", "peak_value", "count",
        "first_seen", "last_seen", "acknowledged_by", "inhibited",
    ]  # fmt: skip
    list_filter = [
        OpenFilter, "severity", ("first_seen", admin.DateFieldListFilter), "inhibited",
        ("rule", admin.RelatedFieldListFilter), ("source", admin.RelatedFieldListFilter),
    ]  # fmt: skip
    list_select_related = ["rule", "source", "acknowledged_by"]
    # Names and fingerprints, not message text: a substring search of a million
    # messages is a full scan on every keystroke.
    search_fields = ["=fingerprint", "=source__name", "=rule__name"]
    search_help_text = "An exact source name, rule name or fingerprint."
    ordering = ["-last_seen", "-id"]
    paginator = CappedCountPaginator
    # A million rows: no exact count on every page, no date drill-down scanning them all.
    show_full_result_count = False
    list_per_page = 200
    actions = ["acknowledge", "resolve", "silence_hour", "silence_day", "silence_until_resolved"]

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, alert: Alert) -> str:
        return alert.get_severity_display()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Alert], search_term: str
    ) -> tuple[QuerySet[Alert], bool]:
        # Resolve names in the small tables first, then filter alerts by id columns:
        # an OR across joins would make PostgreSQL walk the whole alerts table.
        term = search_term.strip()
        if not term:
            return queryset, False
        sources = Source.objects.filter(name=term).values_list("pk", flat=True)
        rules = Rule.objects.filter(name__iexact=term).values_list("pk", flat=True)
        matched = queryset.filter(
            Q(fingerprint=term) | Q(source_id__in=list(sources)) | Q(rule_id__in=list(rules))
        )
        return matched, False

    def get_urls(self) -> list[Any]:
        return [
            path(
                "statistics/",
                self.admin_site.admin_view(self.statistics_view),
                name="alerts_alert_statistics",
            ),
            *super().get_urls(),
        ]

    def statistics_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = min(max(int(request.GET.get("days", "30") or 30), 1), 365)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Alert statistics, last {days} days",
            "opts": self.model._meta,
            "stats": alert_statistics(days=days),
            "days": days,
        }
        return TemplateResponse(request, "admin/alerts/statistics.html", context)

    @admin.action(
        description="Acknowledge selected alerts (with a note)", permissions=["acknowledge"]
    )
    def acknowledge(
        self, request: HttpRequest, queryset: QuerySet[Alert]
    ) -> TemplateResponse | None:
        form = AcknowledgeForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done, skipped = 0, []
            for alert_id in queryset.values_list("pk", flat=True):
                try:
                    alert_acknowledge(
                        alert_id=alert_id, by=request.user, note=form.cleaned_data["note"],  # type: ignore[arg-type]
                        until=form.cleaned_data["until"],
                    )  # fmt: skip
                    done += 1
                except (AlertClosed, ValueError) as exc:
                    skipped.append(f"#{alert_id}: {exc}")
            self.message_user(request, f"{done} alert(s) acknowledged.")
            if skipped:
                self.message_user(request, "Skipped " + "; ".join(skipped), messages.WARNING)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Acknowledge alerts",
            "opts": self.model._meta,
            "alerts": queryset.select_related("rule", "source")[:200],
            "form": form,
            "action": "acknowledge",
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/alerts/acknowledge.html", context)

    @admin.action(description="Resolve selected alerts", permissions=["resolve"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = 0
        for alert_id in queryset.values_list("pk", flat=True):
            try:
                alert_resolve(alert_id=alert_id, by=request.user)  # type: ignore[arg-type]
                done += 1
            except AlertClosed:
                pass
        self.message_user(request, f"{done} alert(s) resolved.")

    def _silence(self, request: HttpRequest, queryset: QuerySet[Alert], hours: int | None) -> None:
        count, skipped = 0, []
        for alert in queryset.select_related("rule", "source"):
            try:
                alert_silence(alert=alert, by=request.user, hours=hours)  # type: ignore[arg-type]
                count += 1
            except ValidationError as exc:
                skipped.append(f"#{alert.pk}: {' '.join(exc.messages)}")
        span = f"for {hours} h" if hours else "until they resolve"
        self.message_user(request, f"{count} alert(s) silenced {span}.")
        if skipped:
            self.message_user(request, "Skipped " + "; ".join(skipped), messages.WARNING)

    @admin.action(description="Silence selected for 1 hour", permissions=["silence"])
    def silence_hour(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        self._silence(request, queryset, 1)

    @admin.action(description="Silence selected for 24 hours", permissions=["silence"])
    def silence_day(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        self._silence(request, queryset, 24)

    @admin.action(description="Silence selected until they resolve", permissions=["silence"])
    def silence_until_resolved(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        self._silence(request, queryset, None)


@admin.register(Silence)
class SilenceAdmin(AuditHistoryAdmin[Silence]):
    list_display = [
        "reason",
        "starts_at",
        "ends_at",
        "schedule",
        "alert",
        "min_severity",
        "expired_at",
        "created_by",
    ]
    list_filter = ["min_severity", "schedule"]
    filter_horizontal = ["sources", "tags", "rules"]
    search_fields = ["reason"]
    raw_id_fields = ["alert"]
    autocomplete_fields = ["schedule"]
    readonly_fields = ["created_by", "created_at", "matched_alerts"]
    actions = ["expire"]

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    @admin.display(description="open alerts it mutes now")
    def matched_alerts(self, silence: Silence) -> str:
        if silence.pk is None:
            return "—"
        matcher = SilenceMatcher(
            min_severity=silence.min_severity,
            source_ids=frozenset(silence.sources.values_list("pk", flat=True)),
            tag_ids=frozenset(silence.tags.values_list("pk", flat=True)),
            rule_ids=frozenset(silence.rules.values_list("pk", flat=True)),
        )
        open_alerts = (
            Alert.objects.filter(state__in=[Alert.State.PENDING, Alert.State.FIRING])
            .select_related("rule", "source")
            .prefetch_related("source__tags")[:500]
        )
        matched = [
            alert
            for alert in open_alerts
            if (silence.alert_id is None or alert.pk == silence.alert_id)
            and matcher.matches(
                severity=alert.severity, source_id=alert.source_id, rule_id=alert.rule_id,
                tag_ids={tag.pk for tag in alert.source.tags.all()},
            )
        ]  # fmt: skip
        if not matched:
            return "None right now."
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a>',
            ((reverse("admin:alerts_alert_change", args=[a.pk]), str(a)) for a in matched),
        )

    @admin.action(description="End selected silences now", permissions=["change"])
    def expire(self, request: HttpRequest, queryset: QuerySet[Silence]) -> None:
        ended = queryset.filter(expired_at__isnull=True).update(expired_at=timezone.now())
        self.message_user(request, f"{ended} silence(s) ended.")


# Channels, policies and the outbox live in their own module; importing it registers them.
from . import delivery_admin  # noqa: E402, F401
