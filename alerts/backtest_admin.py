"""The rule page's "Try on history": a backtest in a worker, its progress, its answer.

`RuleBacktestAdmin` adds three pages under a rule: the form (sources, period, and the
thresholds to try beside the saved ones, filled from an unsaved edit of the rule's page
when it sends one), the job's page (a progress bar the page polls, then the answer:
alerts and notifications side by side, and a chart per series), and the job's progress
as JSON. Anyone who may view the rule may backtest it: a backtest writes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from metrics.models import Source

from .backtest import (
    BacktestRefused,
    BacktestRequest,
    Tier,
    default_sources,
    request_check,
    retention,
)
from .backtest.chart import chart_svg
from .backtest.jobs import DONE, FAILED, job_get, job_start
from .models import Rule, Severity, Threshold

PERIODS = [
    ("1h", "the last hour"), ("6h", "the last 6 hours"), ("1d", "the last day"),
    ("7d", "the last 7 days"), ("30d", "the last 30 days"),
]  # fmt: skip
_SPANS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "1d": timedelta(days=1),
          "7d": timedelta(days=7), "30d": timedelta(days=30)}  # fmt: skip
_COMPARISONS = [("", "—"), *Threshold.Comparison.choices]


class BacktestForm(forms.Form):
    """Sources, period, and (optionally) thresholds to try beside the saved ones."""

    sources = forms.ModelMultipleChoiceField(
        queryset=Source.objects.order_by("name"),
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Default: the enabled sources the rule applies to.",
    )
    period = forms.ChoiceField(choices=PERIODS, initial="1d")
    try_edit = forms.BooleanField(
        required=False, label="Also try these thresholds",
        help_text="Judged beside the saved ones; nothing is saved.",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for severity, label in reversed(Severity.choices):
            self.fields[f"comparison_{severity}"] = forms.ChoiceField(
                choices=_COMPARISONS, required=False, label=f"{label}: comparison"
            )
            self.fields[f"value_{severity}"] = forms.FloatField(required=False, label="value")
            self.fields[f"clear_{severity}"] = forms.FloatField(required=False, label="clear value")

    def tier_rows(self) -> list[tuple[str, Any, Any, Any]]:
        return [
            (label, self[f"comparison_{s}"], self[f"value_{s}"], self[f"clear_{s}"])
            for s, label in reversed(Severity.choices)
        ]

    def tiers(self) -> tuple[Tier, ...] | None:
        if not self.cleaned_data.get("try_edit"):
            return None
        tiers = []
        for severity, _ in Severity.choices:
            comparison = self.cleaned_data.get(f"comparison_{severity}")
            value = self.cleaned_data.get(f"value_{severity}")
            if comparison and value is not None:
                clear = self.cleaned_data.get(f"clear_{severity}")
                tiers.append(Tier(int(severity), comparison, value, clear))
        return tuple(tiers)


def _edit_initial(rule: Rule, edit: str) -> dict[str, Any]:
    """The form's thresholds: from `edit` (severity,comparison,value,clear;... as the
    rule page sends an unsaved edit), else the saved ones."""
    initial: dict[str, Any] = {}
    rows: list[tuple[str, str, str, str]] = []
    for part in filter(None, edit.split(";")):
        fields = [*part.split(","), "", "", "", ""][:4]
        rows.append((fields[0], fields[1], fields[2], fields[3]))
    if not rows:
        rows = [
            (str(t.severity), t.comparison, repr(t.value), "" if t.clear_value is None else
             repr(t.clear_value))
            for t in rule.thresholds.all()
        ]  # fmt: skip
    else:
        initial["try_edit"] = True
    for severity, comparison, value, clear in rows:
        initial[f"comparison_{severity}"] = comparison
        initial[f"value_{severity}"] = value
        initial[f"clear_{severity}"] = clear
    return initial


class RuleBacktestAdmin(admin.ModelAdmin[Rule]):
    """The backtest pages of a rule (mixed into `RuleAdmin`)."""

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/backtest/", view(self.backtest_view),
                 name="alerts_rule_backtest"),
            path("<path:object_id>/backtest/<str:job_id>/", view(self.backtest_job_view),
                 name="alerts_rule_backtest_job"),
            path("<path:object_id>/backtest/<str:job_id>/progress", view(self.backtest_progress),
                 name="alerts_rule_backtest_progress"),
            *super().get_urls(),
        ]  # fmt: skip

    def _rule(self, request: HttpRequest, object_id: str) -> Rule:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Rule.objects.prefetch_related("thresholds"), pk=object_id)

    def backtest_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        rule = self._rule(request, object_id)
        if request.method == "POST":
            form = BacktestForm(request.POST)
            if form.is_valid():
                end = timezone.now().replace(microsecond=0)
                asked = BacktestRequest(
                    rule_id=rule.pk, start=end - _SPANS[form.cleaned_data["period"]], end=end,
                    source_ids=tuple(s.pk for s in form.cleaned_data["sources"]),
                    thresholds=form.tiers(),
                )  # fmt: skip
                try:
                    request_check(asked)
                except BacktestRefused as exc:
                    form.add_error(_FORM_FIELDS.get(exc.field), exc.message)
                else:
                    job = job_start(asked, user_id=request.user.pk)
                    return HttpResponseRedirect(
                        reverse("admin:alerts_rule_backtest_job", args=[rule.pk, job])
                    )
        else:
            form = BacktestForm(
                initial={
                    "sources": default_sources(rule), "period": "1d",
                    **_edit_initial(rule, request.GET.get("edit", "")),
                }
            )  # fmt: skip
        return self._page(request, rule, {"form": form})

    def backtest_job_view(self, request: HttpRequest, object_id: str, job_id: str) -> HttpResponse:
        rule = self._rule(request, object_id)
        job = job_get(job_id)
        if job is None or job["rule_id"] != rule.pk:
            raise Http404("No such backtest (they are kept an hour).")
        context: dict[str, Any] = {"job": job}
        if job["status"] == DONE and job["result"]:
            context.update(_answer_context(job["result"]))
        return self._page(request, rule, context)

    def backtest_progress(self, request: HttpRequest, object_id: str, job_id: str) -> JsonResponse:
        rule = self._rule(request, object_id)
        job = job_get(job_id)
        if job is None or job["rule_id"] != rule.pk:
            return JsonResponse({"status": FAILED, "error": "No such backtest."}, status=404)
        return JsonResponse(
            {"status": job["status"], "progress": job["progress"], "error": job["error"]}
        )

    def _page(self, request: HttpRequest, rule: Rule, extra: dict[str, Any]) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": f"Try {rule.name} on history",
            "opts": self.model._meta,
            "original": rule,
            "rule": rule,
            "retention_days": retention().days,
            **extra,
        }
        return TemplateResponse(request, "admin/alerts/rule/backtest.html", context)


_FORM_FIELDS = {"sources": "sources", "from": "period", "to": "period", "thresholds": None}


def _answer_context(answer: dict[str, Any]) -> dict[str, Any]:
    """What the results part of the page shows: runs side by side, charts as SVG."""
    runs = answer["runs"]
    rows = [
        ("Alerts opened", [run["summary"]["alerts"] for run in runs]),
        ("Of which fired", [run["summary"]["fired"] for run in runs]),
        ("Still open at the end", [run["summary"]["open_at_end"] for run in runs]),
        ("Time firing", [_duration(run["summary"]["firing_seconds"]) for run in runs]),
        ("Notifications", [run["summary"]["notifications"] for run in runs]),
    ]
    charts = [
        {
            "source": chart["source"],
            "labels": ", ".join(f"{k}={v}" for k, v in chart["labels"].items()),
            "svg": mark_safe(chart_svg(chart, runs, answer["from"], answer["to"])),  # noqa: S308
        }
        for chart in answer["charts"]
    ]
    shown = [
        {
            **run,
            "alerts": [
                {
                    **alert,
                    "start": _when(alert["start"]),
                    "end": _when(alert["end"]),
                    "peak_value": "—"
                    if alert["peak_value"] is None
                    else f"{alert['peak_value']:.6g}",
                }
                for alert in run["alerts"]
            ],
        }
        for run in runs
    ]
    return {"answer": answer, "runs": shown, "summary_rows": rows, "charts": charts}


def _when(text: str | None) -> str | None:
    """`2026-01-31 12:00:03Z`: an answer's time, to the second."""
    return None if text is None else text[:19].replace("T", " ") + "Z"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"
