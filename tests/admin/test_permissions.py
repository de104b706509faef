"""The Viewer, Operator and Admin groups, and what the admin and the API let each do."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert, Rule, Threshold
from health.models import HealthCheck
from metrics.models import Source
from tests.admin.conftest import signed_in
from tests.factories import make_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def firing(source: Source) -> Alert:
    now = timezone.now()
    return make_alert(
        Rule.objects.get(name="Leverage"), source, fingerprint="p" * 64, severity=50,
        value=4.5, threshold_value=3, at=now - timedelta(minutes=5), fired_at=now,
        last_seen=now,
    )  # fmt: skip


def action_names(client: Client, url: str) -> set[str]:
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def test_it_creates_the_three_groups_by_migration() -> None:
    def perms(name: str) -> set[str]:
        group = Group.objects.get(name=name)
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}

    viewer, operator, admin = perms("Viewer"), perms("Operator"), perms("Admin")

    assert {"alerts.view_alert", "alerts.view_threshold", "audit.view_ruleevent"} <= viewer
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in viewer)
    assert viewer < operator < admin
    assert {
        "alerts.change_alert", "alerts.add_silence", "alerts.change_silence", "alerts.send_test",
        "health.run_healthcheck", "health.reset_breaker",
    } <= operator  # fmt: skip
    assert "alerts.change_threshold" not in operator
    assert {
        "alerts.change_rule", "alerts.change_threshold", "alerts.add_thresholdoverride",
        "alerts.change_channel", "alerts.change_policy", "metrics.add_source",
        "metrics.add_sourceapikey", "health.change_healthcheck",
    } <= admin  # fmt: skip


def test_it_lets_an_operator_but_not_a_viewer_acknowledge_through_the_api(
    viewer: User, operator: User, firing: Alert
) -> None:
    url = f"/api/v1/alerts/{firing.pk}/acknowledge"
    client = APIClient()

    client.force_authenticate(viewer)
    assert client.post(url, {}, format="json").status_code == 403
    client.force_authenticate(operator)
    assert client.post(url, {}, format="json").status_code == 200

    firing.refresh_from_db()
    assert firing.acknowledged_by == operator


def test_it_offers_each_group_only_its_admin_actions(
    viewer: User, operator: User, risk_admin: User, firing: Alert
) -> None:
    alerts, checks = "/admin/alerts/alert/", "/admin/health/healthcheck/"

    assert action_names(signed_in(viewer), alerts) == set()
    assert {"acknowledge", "resolve", "silence_hour"} <= action_names(signed_in(operator), alerts)
    assert action_names(signed_in(viewer), checks) == set()
    assert {"run_now", "reset_breaker"} <= action_names(signed_in(operator), checks)
    assert "delete_selected" not in action_names(signed_in(operator), checks)
    assert "delete_selected" in action_names(signed_in(risk_admin), checks)


def test_it_refuses_an_action_a_group_lacks_even_when_posted(viewer: User, firing: Alert) -> None:
    answer = signed_in(viewer).post(
        "/admin/alerts/alert/", {"action": "resolve", "_selected_action": [firing.pk]}
    )

    firing.refresh_from_db()
    assert answer.status_code in (200, 302, 403)
    assert firing.state == Alert.State.FIRING


def test_it_refuses_an_operator_editing_a_threshold(operator: User) -> None:
    rule = Rule.objects.get(name="Drawdown")
    threshold = rule.thresholds.get(severity=30)
    client = signed_in(operator)

    page = client.get(f"/admin/alerts/rule/{rule.pk}/change/")
    answer = client.post(f"/admin/alerts/rule/{rule.pk}/change/", {"name": "Drawdown"})
    added = client.post("/admin/alerts/thresholdoverride/add/", {"threshold": threshold.pk})

    assert page.status_code == 200
    assert b"thresholds-0-value" not in page.content
    assert answer.status_code == 403
    assert added.status_code == 403
    assert Threshold.objects.get(pk=threshold.pk).value == threshold.value


def test_it_lets_an_operator_run_checks_without_editing_them(operator: User) -> None:
    check = HealthCheck.objects.create(name="db", kind="postgres")
    client = signed_in(operator)

    page = client.get(f"/admin/health/healthcheck/{check.pk}/change/")
    reset = client.post(
        "/admin/health/healthcheck/", {"action": "reset_breaker", "_selected_action": [check.pk]}
    )

    assert b'name="interval"' not in page.content
    assert reset.status_code == 302


def test_it_hides_the_dashboard_from_staff_without_view_permissions(
    operator: User, firing: Alert
) -> None:
    nobody = User.objects.create_user("nobody", password="x", is_staff=True)

    assert signed_in(nobody).get("/admin/dashboard.json").status_code == 403
    assert signed_in(nobody).get("/admin/").context["dashboard"] is None
    state: dict[str, Any] = signed_in(operator).get("/admin/dashboard.json").json()
    assert state["can_acknowledge"] is True
    assert [row["id"] for row in state["firing"]["alerts"]] == [firing.pk]
