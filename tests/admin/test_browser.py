"""The admin in headless Chromium against a live server: what an operator does on a bad day."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.evaluation import source_evaluate
from alerts.models import Alert, Rule
from metrics.models import MetricSample, MetricSeries, Source
from metrics.services import source_create
from tests.processes import celery_worker, process_environment, wait_until

from .conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def log_in(page: Any, live_server: Any, user: User) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#tw-dashboard")


def post_samples(key: str, samples: list[dict[str, Any]]) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    answer = client.post(
        "/api/v1/metrics", json.dumps({"samples": samples}), content_type="application/json"
    )
    assert answer.status_code == 202, answer.content


def equity_history(source: Source, *, hours: int = 24) -> None:
    """A day of equity rising then falling, and its drawdown, written straight to the tables
    (derived metrics are not what these tests are about: the charts are)."""
    now = timezone.now()
    steps = hours * 6  # one point per 10 minutes
    equity = [10_000 + 40 * i - 0.2 * i * i for i in range(steps)]
    peaks = [max(equity[: i + 1]) for i in range(steps)]
    for name, values in (
        ("equity", equity),
        (
            "drawdown_pct",
            [(peak - value) / peak * 100 for peak, value in zip(peaks, equity, strict=True)],
        ),
    ):
        series = MetricSeries.objects.create(source=source, name=name, labels={}, labels_key="{}")
        MetricSample.objects.bulk_create(
            MetricSample(series=series, ts=now - timedelta(minutes=10 * (steps - i)), value=value)
            for i, value in enumerate(values)
        )


def leverage_alert(name: str = "lev-bot") -> tuple[Source, Alert]:
    """A source whose leverage ran from 1x to 4.5x over the last half hour: CRITICAL."""
    source, key = source_create(name=name)
    now = timezone.now()
    post_samples(
        key,
        [
            {"name": "leverage", "value": 1 + 3.5 * i / 30,
             "ts": (now - timedelta(minutes=30 - i)).isoformat()}
            for i in range(31)
        ],
    )  # fmt: skip
    source_evaluate(source_id=source.pk)
    return source, Alert.objects.get(source=source, rule__name="Leverage")


def test_it_shows_a_firing_alert_live_and_acknowledges_it_from_the_dashboard(
    live_server: Any, page: Any, operator: User, artifacts: Path
) -> None:
    source, key = source_create(name="live-bot")
    equity_history(source)
    current_app.control.purge()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, live_server, operator)
    assert page.query_selector("tr.tw-alert:has-text('live-bot')") is None
    # Marks this very document: a reload or a navigation would lose it.
    page.evaluate("window.twSameDocument = true")

    worker_log = artifacts / "worker.log"
    with celery_worker(process_environment(), queues="ingest", log_path=worker_log):
        post_samples(key, [{"name": "leverage", "value": 4.5}])
        assert wait_until(lambda: Alert.objects.filter(source=source).exists(), 60)
        row = page.wait_for_selector("tr.tw-alert:has-text('live-bot')", timeout=30_000)

    assert page.evaluate("window.twSameDocument") is True
    assert not errors
    assert "Leverage" in row.inner_text()
    assert "live-bot" in row.inner_text()
    assert "Critical" in row.inner_text()
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

    row.query_selector("[data-testid=acknowledge]").click()
    page.wait_for_selector("text=acknowledged by operator")
    alert = Alert.objects.get(source=source, rule__name="Leverage")
    assert alert.acknowledged_by == operator
    assert page.evaluate("window.twSameDocument") is True


def test_it_shows_the_alert_page_with_the_chart_threshold_and_timeline(
    live_server: Any, page: Any, operator: User, artifacts: Path
) -> None:
    _, alert = leverage_alert()
    log_in(page, live_server, operator)

    page.goto(f"{live_server.url}/admin/alerts/alert/{alert.pk}/change/")

    chart = page.wait_for_selector("[data-testid=alert-chart] svg.tw-chart")
    assert chart.query_selector("path.tw-line") is not None
    assert chart.query_selector("line.tw-threshold") is not None
    assert "threshold 3" in (chart.text_content() or "")
    timeline = page.inner_text("[data-testid=alert-timeline]")
    assert "Firing" in timeline
    assert page.query_selector("[data-testid=alert-notifications]") is not None
    page.screenshot(path=str(artifacts / "alert.png"), full_page=True)


def test_it_does_not_let_a_viewer_acknowledge(live_server: Any, page: Any, viewer: User) -> None:
    _, alert = leverage_alert()
    log_in(page, live_server, viewer)

    row = page.wait_for_selector(f"tr[data-alert-id='{alert.pk}']")
    assert row.query_selector("[data-testid=acknowledge]") is None
    assert "not acknowledged" in row.inner_text()
    # Even asked directly, with a valid CSRF token, the server refuses.
    token = page.input_value("#tw-dashboard input[name=csrfmiddlewaretoken]")
    answer = page.request.post(
        f"{live_server.url}/admin/dashboard/alerts/{alert.pk}/acknowledge",
        headers={"X-CSRFToken": token, "Accept": "application/json", "Referer": live_server.url},
    )
    assert answer.status == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_it_does_not_let_an_operator_edit_a_threshold(
    live_server: Any, page: Any, operator: User
) -> None:
    rule = Rule.objects.get(name="Drawdown")
    log_in(page, live_server, operator)

    page.goto(f"{live_server.url}/admin/alerts/rule/{rule.pk}/change/")

    assert page.query_selector("input[name='thresholds-0-value']") is None
    assert page.query_selector("input[name=_save]") is None
    assert "View rule" in page.inner_text("#content")


def test_it_lets_an_admin_edit_a_threshold_and_shows_the_change_in_the_history(
    live_server: Any, page: Any, risk_admin: User, artifacts: Path
) -> None:
    rule = Rule.objects.get(name="Drawdown")
    warning = rule.thresholds.get(severity=30)
    inline = next(
        i for i, pk in enumerate(rule.thresholds.order_by("-severity").values_list("pk", flat=True))
        if pk == warning.pk
    )  # fmt: skip
    log_in(page, live_server, risk_admin)

    page.goto(f"{live_server.url}/admin/alerts/rule/{rule.pk}/change/")
    page.fill(f"input[name='thresholds-{inline}-value']", "12.5")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")

    warning.refresh_from_db()
    assert warning.value == 12.5
    page.goto(f"{live_server.url}/admin/alerts/rule/{rule.pk}/history/")
    history = page.inner_text("[data-testid=audit-history]")
    assert "threshold changed" in history
    assert "risk-admin" in history
    assert "10 → 12.5" in history
    page.screenshot(path=str(artifacts / "history.png"), full_page=True)


def test_it_issues_a_source_key_once_and_revokes_it(
    live_server: Any, page: Any, risk_admin: User
) -> None:
    source, _ = source_create(name="keyed-bot")
    log_in(page, live_server, risk_admin)

    page.goto(f"{live_server.url}/admin/metrics/source/{source.pk}/change/")
    page.fill("[data-testid=source-keys] input[name=name]", "production")
    page.click("[data-testid=issue-key]")
    key = page.inner_text("[data-testid=new-key]").strip()

    assert source.api_keys.get(name="production").is_valid(key)
    page.goto(f"{live_server.url}/admin/metrics/source/{source.pk}/change/")
    assert key not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("[data-testid=source-keys] tr", has_text="production").locator(
        "[data-testid=revoke-key]"
    ).click()
    page.wait_for_selector("text=The key is revoked")
    assert source.api_keys.get(name="production").revoked


def test_a_source_name_stays_on_one_line_beside_a_long_why(
    live_server: Any, page: Any, operator: User
) -> None:
    leverage_alert(name="exchange-gateway-01")
    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(page, live_server, operator)
    link = page.wait_for_selector("[data-testid=sources] a:has-text('exchange-gateway-01')")

    # A wrapped inline element has one box per line it spans.
    assert link.evaluate("element => element.getClientRects().length") == 1


def test_a_source_outside_its_session_reads_market_closed_not_lapsed(
    live_server: Any, page: Any, operator: User, artifacts: Path
) -> None:
    from metrics.ingest import heartbeat_record
    from metrics.models import Schedule
    from metrics.timetables import DAY_NAMES
    from metrics.validation import HeartbeatIn

    # A session three days away: closed now, whatever the day the test runs.
    day = DAY_NAMES[(timezone.now().weekday() + 3) % 7]
    session = Schedule.objects.create(name="desk", kind="weekly", windows=[f"{day} 10:00-11:00"])
    source, _ = source_create(name="equities-bot")
    Source.objects.filter(pk=source.pk).update(schedule=session)
    heartbeat_record(
        source=source, heartbeat=HeartbeatIn("ok", {}, timezone.now() - timedelta(days=2))
    )

    log_in(page, live_server, operator)
    row = page.wait_for_selector(f"[data-source-id='{source.pk}']")

    assert row.query_selector("[data-testid=heartbeat]").inner_text() == "market closed"
    assert "market closed, desk opens" in row.inner_text()
    assert "no heartbeat" not in row.inner_text()
    page.screenshot(path=str(artifacts / "dashboard-market-closed.png"), full_page=True)
