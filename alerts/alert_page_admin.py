"""An alert's own page in the admin: read-only, a summary first, then the chart, the
timeline and the notifications, with the operator's buttons (acknowledge, resolve,
silence).

The buttons call the services the list's bulk actions and the operator API call
(`alerts.lifecycle`, `alerts.silences`) and ask the same permissions, so the page, the
list and a script cannot disagree on who may do what or on what it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from .alert_actions import AlertClosed, alert_acknowledge, alert_resolve
from .alert_page import alert_chart, alert_figures, alert_notifications, alert_timeline
from .models import Alert
from .silences import alert_silence, alert_silences

# What the page's Silence buttons post, and for how many hours (None: until it resolves).
SILENCE_SPANS: Final[dict[str, int | None]] = {"1h": 1, "24h": 24, "resolved": None}


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    until = forms.DateTimeField(
        required=False, help_text="Empty: until the alert resolves. Format: 2026-01-31 18:00."
    )


@dataclass(frozen=True)
class AlertButtons:
    """Which of the page's buttons a person sees for one alert."""

    acknowledge: bool
    resolve: bool
    silence: bool
    silence_until_resolved: bool
    # Allowed none of them at all (the Viewer group): the page says so instead.
    view_only: bool


class AlertPageAdmin(admin.ModelAdmin[Alert]):
    """The alert's page; `AlertAdmin` adds the list, its filters and its bulk actions."""

    # Nothing here is typed in by a person: the summary shows what matters, these the rest.
    fieldsets = [
        (
            "Details",
            {
                "classes": ["collapse"],
                "fields": [
                    "fingerprint", "labels", "fired_at", "condition_cleared_at",
                    "last_notified_at", "announced_at", "inhibited", "keep_resolved",
                    "keep_resolved_through",
                ],
            },
        ),
    ]  # fmt: skip

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An alert changes through its lifecycle only (evaluation, acknowledge, resolve):
        # its page is read-only for every group, and a POST of the form is refused.
        return False

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("alerts.change_alert"))

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("alerts.change_alert"))

    def has_silence_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("alerts.add_silence"))

    def buttons(self, request: HttpRequest, alert: Alert) -> AlertButtons:
        acknowledge = self.has_acknowledge_permission(request)
        resolve = self.has_resolve_permission(request)
        silence = self.has_silence_permission(request)
        return AlertButtons(
            acknowledge=acknowledge and alert.is_open and not alert.is_acknowledged,
            resolve=resolve and alert.is_open,
            silence=silence,
            silence_until_resolved=silence and alert.is_open,
            view_only=not (acknowledge or resolve or silence),
        )

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Alert | None:
        # The page shows every foreign key: join them rather than fetch each on its own.
        queryset = self.get_queryset(request).select_related(
            "rule", "source", "acknowledged_by", "resolved_by"
        )
        try:
            return queryset.get(pk=int(object_id))
        except (ValueError, Alert.DoesNotExist):
            return None

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Alert | None = None,
    ) -> Any:
        if obj is not None:
            # Here rather than in change_view: the alert is loaded once, by the admin.
            context.update(
                alert_figures=alert_figures(obj),
                alert_chart=alert_chart(obj),
                alert_timeline=alert_timeline(obj),
                alert_notifications=alert_notifications(obj),
                alert_silences=alert_silences(obj),
                alert_buttons=self.buttons(request, obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[Any]:
        def page_action(route: str, view: Any, name: str) -> Any:
            return path(route, self.admin_site.admin_view(view), name=f"alerts_alert_{name}")

        return [
            page_action("<int:alert_id>/acknowledge/", self.acknowledge_view, "acknowledge"),
            page_action("<int:alert_id>/resolve/", self.resolve_view, "resolve"),
            page_action("<int:alert_id>/silence/", self.silence_view, "silence"),
            *super().get_urls(),
        ]

    # --- the buttons: POST only, behind the admin's login and CSRF check ------------------

    def _alert(self, request: HttpRequest, alert_id: int) -> Alert:
        alerts = self.get_queryset(request).select_related("rule", "source")
        return get_object_or_404(alerts, pk=alert_id)

    @staticmethod
    def _back(alert_id: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:alerts_alert_change", args=[alert_id]))

    @method_decorator(require_POST)
    def acknowledge_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        if not self.has_acknowledge_permission(request):
            raise PermissionDenied
        alert = self._alert(request, alert_id)
        form = AcknowledgeForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Not acknowledged: {_errors(form)}", messages.ERROR)
            return self._back(alert_id)
        if alert.is_acknowledged:
            # The page was older than someone else's click: keep who took it.
            self.message_user(
                request,
                f"Already acknowledged by {alert.acknowledged_by or 'someone'} "
                f"at {_when(alert.acknowledged_at)}.",
                messages.WARNING,
            )
            return self._back(alert_id)
        try:
            alert = alert_acknowledge(
                alert_id=alert_id, by=request.user, note=form.cleaned_data["note"],  # type: ignore[arg-type]
                until=form.cleaned_data["until"],
            )  # fmt: skip
        except (AlertClosed, ValueError) as exc:
            self.message_user(request, f"Not acknowledged: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Acknowledged: {alert}.", messages.SUCCESS)
        return self._back(alert_id)

    @method_decorator(require_POST)
    def resolve_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        self._alert(request, alert_id)
        try:
            alert = alert_resolve(alert_id=alert_id, by=request.user)  # type: ignore[arg-type]
        except AlertClosed as exc:
            self.message_user(request, f"Not resolved: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Resolved: {alert}.", messages.SUCCESS)
        return self._back(alert_id)

    @method_decorator(require_POST)
    def silence_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        if not self.has_silence_permission(request):
            raise PermissionDenied
        span = request.POST.get("span", "")
        if span not in SILENCE_SPANS:
            return HttpResponseBadRequest(f"span must be one of {', '.join(SILENCE_SPANS)}.")
        alert = self._alert(request, alert_id)
        hours = SILENCE_SPANS[span]
        try:
            silence = alert_silence(alert=alert, by=request.user, hours=hours)  # type: ignore[arg-type]
        except ValidationError as exc:
            self.message_user(request, f"Not silenced: {' '.join(exc.messages)}", messages.ERROR)
        else:
            until = f"until {_when(silence.ends_at)}" if hours else "until it resolves"
            self.message_user(
                request, f"Silenced {until}: {alert.rule} on {alert.source}.", messages.SUCCESS
            )
        return self._back(alert_id)


def _errors(form: forms.Form) -> str:
    return " ".join(
        f"{field}: {' '.join(map(str, errors))}" for field, errors in form.errors.items()
    )


def _when(moment: datetime | None) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}" if moment else "an unknown time"
