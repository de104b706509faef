"""The health admin: checks with badges, "run now", "reset breaker", reports read-only."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from alerts.channels.signing import signing_secret_new
from alerts.delivery import notification_deliver
from alerts.models import Channel, Notification
from health.models import HealthCheck, HealthReport
from health.runner import checks_run_due
from health.transitions import Breaker
from tests.health.conftest import MakeCheck, recovery_channel, unused_port
from tests.receivers import Answer, receiver

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


def test_it_creates_a_recovery_action_as_a_channel_and_shows_its_new_secret_once(
    admin_client_logged: Client,
) -> None:
    response = admin_client_logged.post(
        reverse("admin:alerts_channel_add"),
        {
            "name": "pause alpha",
            "kind": "recovery",
            "enabled": "on",
            "min_severity": 20,
            "config": json.dumps(
                {"url": "http://127.0.0.1:9/commands", "command": "pause_trading"}
            ),
            "secrets": "{}",
            "rate_limit": 0,
            "rate_window": "00:01:00",
        },
        follow=True,
    )

    assert response.status_code == 200
    created = Channel.objects.get(name="pause alpha")
    secret = created.secrets["signing_secret"]
    assert secret.startswith("whsec_")
    assert secret in response.content.decode()  # shown this once, for the trading system
    page = admin_client_logged.get(reverse("admin:alerts_channel_change", args=[created.pk]))
    assert secret not in page.content.decode()


def test_it_shows_each_attempt_of_a_recovery_action(
    admin_client_logged: Client, make_check: MakeCheck
) -> None:
    with receiver() as bot:
        bot.script = [Answer(status=503, body=b"busy")]
        channel, _ = recovery_channel(f"{bot.url}/commands")
        make_check(
            config={"host": "127.0.0.1", "port": unused_port()}, name="feed",
            recovery_action=channel,
        )  # fmt: skip
        checks_run_due(claim_seconds=0)
        notification = Notification.objects.get(channel=channel)
        for _ in range(2):
            due = Notification.objects.get(pk=notification.pk).next_attempt_at
            notification_deliver(notification_id=notification.pk, now=due)

    listed = admin_client_logged.get(
        reverse("admin:alerts_notification_changelist"), {"channel__kind": "recovery"}
    )
    page = admin_client_logged.get(
        reverse("admin:alerts_notification_change", args=[notification.pk])
    )

    assert f"/{notification.pk}/change/" in listed.content.decode()
    html = page.content.decode()
    assert "pause alpha" in html
    assert "Check turned bad" in html
    assert "feed turned CRITICAL" in html
    # The delivery log: both attempts with the endpoint's status and answer.
    assert re.findall(r'<td class="field-status">\s*<p>(\d+)</p>', html) == ["503", "200"]
    assert "busy" in html


def test_a_check_is_offered_only_recovery_actions(
    admin_client_logged: Client, make_check: MakeCheck
) -> None:
    action, _ = recovery_channel("http://127.0.0.1:9/commands")
    hook = Channel(name="ops-hook", kind="webhook", config={"url": "http://127.0.0.1:9/hook"})
    hook.secrets = {"signing_secret": signing_secret_new()}
    hook.save()
    check = make_check(config={"host": "127.0.0.1", "port": 9}, name="gateway")

    form = admin_client_logged.get(reverse("admin:health_healthcheck_change", args=[check.pk]))
    choices = form.context["adminform"].form.fields["recovery_action"].queryset
    assert list(choices) == [action]

    check.recovery_action = hook
    with pytest.raises(ValidationError) as caught:
        check.full_clean()
    assert "recovery_action" in caught.value.message_dict


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
