"""The health admin: checks with badges, "run now", "reset breaker", reports read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from health.models import HealthCheck, HealthReport, RecoveryAction
from health.transitions import Breaker
from tests.health.conftest import MakeCheck

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def action(client: Client, name: str, ids: list[int]) -> Any:
    return client.post(
        reverse("admin:health_healthcheck_changelist"),
        {"action": name, "_selected_action": ids, "index": 0},
        follow=True,
    )


def test_it_runs_checks_now_from_the_list(
    admin_client_logged: Client, make_check: MakeCheck, tcp_listener: int
) -> None:
    check = make_check(config={"host": "127.0.0.1", "port": tcp_listener}, name="gateway")
    response = action(admin_client_logged, "run_now", [check.pk])
    assert response.status_code == 200
    # (the admin capitalises messages)
    assert "Gateway: HEALTHY</li>" in response.content.decode()
    assert HealthReport.objects.filter(health_check=check).count() == 1
    page = admin_client_logged.get(reverse("admin:health_healthcheck_changelist")).content.decode()
    assert "HEALTHY</span>" in page


def test_it_resets_a_breaker_from_the_list(
    admin_client_logged: Client, make_check: MakeCheck
) -> None:
    check = make_check(
        config={"host": "127.0.0.1", "port": 9}, breaker=Breaker.OPEN, breaker_failures=3
    )
    response = action(admin_client_logged, "reset_breaker", [check.pk])
    assert "Closed the circuit breaker of 1 check(s)." in response.content.decode()
    check.refresh_from_db()
    assert (check.breaker, check.breaker_failures) == (Breaker.CLOSED, 0)


def test_it_lists_reports_read_only_with_a_date_drill_down(
    admin_client_logged: Client, make_check: MakeCheck, tcp_listener: int
) -> None:
    check = make_check(config={"host": "127.0.0.1", "port": tcp_listener})
    action(admin_client_logged, "run_now", [check.pk])
    report = HealthReport.objects.get()
    listing = admin_client_logged.get(reverse("admin:health_healthreport_changelist"))
    assert listing.status_code == 200
    assert (
        "date_hierarchy" in listing.content.decode()
        or "created_at__year" in listing.content.decode()
    )
    detail = admin_client_logged.get(reverse("admin:health_healthreport_change", args=[report.pk]))
    assert detail.status_code == 200
    assert admin_client_logged.get(reverse("admin:health_healthreport_add")).status_code == 403


def test_it_creates_a_recovery_action_with_a_secret_and_shows_it(
    admin_client_logged: Client,
) -> None:
    response = admin_client_logged.post(
        reverse("admin:health_recoveryaction_add"),
        {
            "name": "pause",
            "command": "pause_trading",
            "url": "http://127.0.0.1:9/commands",
            "parameters": "{}",
            "max_attempts": 5,
            "enabled": "on",
            "custom_command": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = RecoveryAction.objects.get()
    assert created.signing_secret_encrypted
    page = admin_client_logged.get(reverse("admin:health_recoveryaction_change", args=[created.pk]))
    assert "whsec_" in page.content.decode()


def test_it_refuses_a_check_without_its_target(admin_client_logged: Client) -> None:
    response = admin_client_logged.post(
        reverse("admin:health_healthcheck_add"),
        {
            "name": "bad",
            "kind": "tcp",
            "config": "{}",
            "interval": "00:00:30",
            "timeout": "00:00:05",
            "failures_to_unhealthy": 2,
            "successes_to_recover": 2,
            "breaker_threshold": 3,
            "breaker_retry": "00:05:00",
            "recover_when": "unhealthy",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "host: a host name or address is required" in response.content.decode()
    assert not HealthCheck.objects.exists()
