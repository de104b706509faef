"""The dashboard follows the live event stream where it works (the real web server and
its front), and polls where it does not (a server without the front)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from alerts.alert_actions import alert_acknowledge
from alerts.models import Rule
from metrics.services import source_create
from tests.factories import make_alert
from tests.processes import free_port, process_environment, web_server

from .conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def log_in(page: Any, base: str, user: User) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#tw-dashboard")


def test_it_follows_the_stream_and_shows_a_change_without_waiting_for_a_poll(
    page: Any, viewer: User, operator: User
) -> None:
    source, _ = source_create(name="streamed-bot")
    alert = make_alert(
        Rule.objects.create(name="Dashboard drawdown", metric="drawdown_pct"), source
    )
    port = free_port()
    with web_server(process_environment(), port):
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        fetches: list[str] = []
        page.on("request", lambda request: fetches.append(request.url))
        log_in(page, f"http://127.0.0.1:{port}", viewer)
        page.wait_for_selector("#tw-dashboard[data-live=stream]")
        row = f"tr.tw-alert[data-alert-id='{alert.pk}']"
        assert "not acknowledged" in page.inner_text(row)
        page.wait_for_function("document.getElementById('tw-updated').textContent.includes('live')")
        before = sum("dashboard.json" in url for url in fetches)

        alert_acknowledge(alert_id=alert.pk, by=operator, note="on it")
        # Streaming, the page polls once a minute: the change is fetched because the
        # stream announced it.
        page.wait_for_selector(f"{row} .tw-acked")
        assert "acknowledged by operator" in page.inner_text(row)
        assert sum("dashboard.json" in url for url in fetches) > before
        assert any("/api/v1/stream" in url for url in fetches)
        assert not errors


def test_it_polls_where_the_stream_does_not_work(
    live_server: Any, page: Any, viewer: User, operator: User
) -> None:
    """Django's own server has no front to hold the stream: it answers 503, and the page
    keeps polling (as behind a proxy that drops the stream)."""
    source, _ = source_create(name="polled-bot")
    alert = make_alert(
        Rule.objects.create(name="Dashboard drawdown", metric="drawdown_pct"), source
    )
    log_in(page, live_server.url, viewer)
    page.wait_for_selector("#tw-dashboard[data-live=polling]")
    alert_acknowledge(alert_id=alert.pk, by=operator)
    page.wait_for_selector(f"tr.tw-alert[data-alert-id='{alert.pk}'] .tw-acked")
    assert page.get_attribute("#tw-dashboard", "data-live") == "polling"
