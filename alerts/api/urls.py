"""URLs of the operator alerts API, included under `api/v1/`."""

from __future__ import annotations

from django.urls import path

from . import backtest, control, delivery, silences, views

urlpatterns = [
    path("alerts", views.AlertListApi.as_view(), name="alert-list"),
    path("alerts/test", delivery.AlertTestApi.as_view(), name="alert-test"),
    path("alerts/<int:alert_id>", views.AlertDetailApi.as_view(), name="alert-detail"),
    path(
        "alerts/<int:alert_id>/acknowledge",
        views.AlertAcknowledgeApi.as_view(),
        name="alert-acknowledge",
    ),
    path("alerts/<int:alert_id>/resolve", views.AlertResolveApi.as_view(), name="alert-resolve"),
    path(
        # An id or a name (`metrics.queries.source_find`).
        "sources/<str:source>/control",
        control.SourceControlApi.as_view(),
        name="source-control",
    ),
    path("rules/<int:rule_id>/backtest", backtest.RuleBacktestApi.as_view(), name="rule-backtest"),
    path("backtests/<str:job_id>", backtest.BacktestJobApi.as_view(), name="backtest-job"),
    path("silences", silences.SilencesApi.as_view(), name="silence-list"),
    path(
        "silences/<int:silence_id>/expire",
        silences.SilenceExpireApi.as_view(),
        name="silence-expire",
    ),
]
