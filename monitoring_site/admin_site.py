"""Tradewatch's admin site: its index is the operator's dashboard.

Installed as the default admin site (`admin_app.TradewatchAdminConfig`), so every
app's `@admin.register` lands here. The dashboard's own URLs live beside the admin's
and go through `admin_view()`, which asks for a signed-in staff member and marks the
answers uncacheable.

Live updates: the page listens to the live event stream (`GET /api/v1/stream`, held by
the web front on its event loop, so an open tab holds no Django thread) and fetches
`dashboard.json` whenever it announces a change, plus every minute for charts and ages.
Where the stream does not work (a proxy that buffers or drops it, a server without the
front such as `runserver`, no Redis) the page falls back to short polling of
`dashboard.json` every few seconds, an ordinary request that works through anything.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from alerts.alert_actions import AlertClosed, alert_acknowledge
from alerts.models import Alert

from .dashboard import DEFAULT_RANGE, dashboard_state
from .trading_control_page import control_page

# Seen on the dashboard: what its reader must be allowed to view.
DASHBOARD_PERMISSIONS = ("alerts.view_alert", "metrics.view_source", "health.view_healthcheck")
ACKNOWLEDGE_PERMISSION = "alerts.change_alert"
POLL_SECONDS = 5
# With the stream working, changes fetch at once: polls only keep charts and ages fresh.
STREAM_POLL_SECONDS = 60


class TradewatchAdminSite(admin.AdminSite):
    """The admin with a dashboard for an index and a JSON view the dashboard polls."""

    site_header = "Tradewatch"
    site_title = "Tradewatch"
    index_title = "Dashboard"
    index_template = "admin/tradewatch/dashboard.html"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path("dashboard.json", self.admin_view(self.dashboard_json), name="dashboard_json"),
            path(
                "dashboard/alerts/<int:alert_id>/acknowledge",
                self.admin_view(self.dashboard_acknowledge),
                name="dashboard_acknowledge",
            ),
            path("trading/control", self.admin_view(self.trading_control), name="trading_control"),
            *super().get_urls(),
        ]

    @staticmethod
    def can_see_dashboard(request: HttpRequest) -> bool:
        return bool(request.user.has_perms(DASHBOARD_PERMISSIONS))

    @staticmethod
    def _state(request: HttpRequest) -> dict[str, Any]:
        raw_source = request.GET.get("source", "")
        state = dashboard_state(
            chart_source_id=int(raw_source) if raw_source.isdigit() else None,
            range_key=request.GET.get("range", DEFAULT_RANGE),
        )
        state["can_acknowledge"] = request.user.has_perm(ACKNOWLEDGE_PERMISSION)
        state["can_halt"] = request.user.has_perm("metrics.halt")
        state["can_rearm"] = request.user.has_perm("metrics.rearm")
        return state

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context: dict[str, Any] = {
            "dashboard": None,
            "poll_seconds": POLL_SECONDS,
            "stream_poll_seconds": STREAM_POLL_SECONDS,
        }
        if self.can_see_dashboard(request):
            context["dashboard"] = self._state(request)
        return super().index(request, {**context, **(extra_context or {})})

    def trading_control(self, request: HttpRequest) -> HttpResponse:
        """Halt, reduce or re-arm: the form every such button leads to."""
        return control_page(request, each_context=self.each_context(request))

    def dashboard_json(self, request: HttpRequest) -> JsonResponse:
        if not self.can_see_dashboard(request):
            raise PermissionDenied
        return JsonResponse(self._state(request))

    @method_decorator(require_POST)
    def dashboard_acknowledge(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        """Acknowledge one alert from the dashboard (answers JSON to the page's script)."""
        wants_json = "application/json" in request.headers.get("Accept", "")
        if not request.user.has_perm(ACKNOWLEDGE_PERMISSION):
            if wants_json:
                return JsonResponse({"error": "You may not acknowledge alerts."}, status=403)
            raise PermissionDenied
        get_object_or_404(Alert.objects.only("pk"), pk=alert_id)
        try:
            alert = alert_acknowledge(
                alert_id=alert_id,
                by=request.user,  # type: ignore[arg-type]
                note=request.POST.get("note", "")[:1000],
            )
        except AlertClosed as exc:
            if wants_json:
                return JsonResponse({"error": str(exc)}, status=409)
            messages.warning(request, str(exc))
        else:
            if wants_json:
                return JsonResponse({"acknowledged": alert.pk})
            messages.success(request, f"Acknowledged: {alert}.")
        return HttpResponseRedirect(reverse("admin:index"))
