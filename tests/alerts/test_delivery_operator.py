"""Operators and delivery: channels in the admin (secrets masked), send test, retry, the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.channels.signing import signing_secret_new
from alerts.delivery import notification_deliver
from alerts.models import Channel, DeliveryAttempt, Notification, Severity
from alerts.payloads import notification_test_payload
from alerts.routing import notifications_create
from tests.factories import make_user, token_client
from tests.receivers import Answer, Receiver, receiver

pytestmark = pytest.mark.django_db

SLACK_PATH = "/services/T000/B000/XXXXsecretXXXX"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def webhook(hook: Receiver) -> Channel:
    channel = Channel(name="ops", kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/ops"})
    channel.secrets = {"signing_secret": signing_secret_new()}
    channel.full_clean()
    channel.save()
    return channel


def channel_form(**fields: Any) -> dict[str, Any]:
    data = {
        "name": "team slack", "kind": "slack", "enabled": "on", "min_severity": 30,
        "config": "{}", "secrets": "{}", "rate_limit": 30, "rate_window": "00:01:00",
    }  # fmt: skip
    data.update(fields)
    return data


def test_it_stores_a_channel_secret_encrypted_and_never_shows_it_back(
    admin_client: Client, hook: Receiver, settings: Any
) -> None:
    settings.TRADEWATCH_SLACK_BASE_URL = hook.url
    url = f"{hook.url}{SLACK_PATH}"

    response = admin_client.post(
        "/admin/alerts/channel/add/", channel_form(secrets=f'{{"webhook_url": "{url}"}}')
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="team slack")
    assert "XXXXsecretXXXX" not in channel.secrets_encrypted
    assert channel.secrets == {"webhook_url": url}
    page = admin_client.get(f"/admin/alerts/channel/{channel.pk}/change/").content.decode()
    assert "XXXXsecretXXXX" not in page
    assert hook.url.split("//")[1] in page  # the host is shown, enough to recognise it


def test_it_keeps_a_secret_left_as_shown_when_other_fields_change(
    admin_client: Client, hook: Receiver, settings: Any
) -> None:
    settings.TRADEWATCH_SLACK_BASE_URL = hook.url
    url = f"{hook.url}{SLACK_PATH}"
    admin_client.post(
        "/admin/alerts/channel/add/", channel_form(secrets=f'{{"webhook_url": "{url}"}}')
    )
    channel = Channel.objects.get()
    page = admin_client.get(f"/admin/alerts/channel/{channel.pk}/change/")
    shown = page.context["adminform"].form.initial["secrets"]

    import json

    response = admin_client.post(
        f"/admin/alerts/channel/{channel.pk}/change/",
        channel_form(name="renamed", secrets=json.dumps(shown)),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert (channel.name, channel.secrets) == ("renamed", {"webhook_url": url})


def test_it_names_the_wrong_field_of_a_channel(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/alerts/channel/add/",
        channel_form(kind="webhook", config='{"url": "ftp://example.com/hook"}'),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["config"] == ["url: Only http:// and https:// URLs are accepted."]
    assert errors["secrets"] == ["signing_secret: A signing secret is required."]
    assert not Channel.objects.exists()


def test_the_admin_sends_a_test_and_shows_the_statistics(
    admin_client: Client, webhook: Channel, hook: Receiver
) -> None:
    response = admin_client.post(
        "/admin/alerts/channel/",
        {"action": "send_test", "_selected_action": [webhook.pk]},
        follow=True,
    )

    assert "Test through ops: sent (200" in response.content.decode()
    [request] = hook.requests
    assert request.path == "/ops"
    webhook.refresh_from_db()
    assert webhook.sent_count == 1
    assert webhook.last_success_at is not None
    listing = admin_client.get("/admin/alerts/channel/").content.decode()
    assert "ops" in listing


def test_the_admin_shows_a_failed_test_with_the_endpoint_answer(
    admin_client: Client, webhook: Channel, hook: Receiver
) -> None:
    hook.script = [Answer(403, body=b"bad signature")]

    response = admin_client.post(
        "/admin/alerts/channel/",
        {"action": "send_test", "_selected_action": [webhook.pk]},
        follow=True,
    )

    page = response.content.decode()
    assert "Test through ops: failed" in page
    assert "bad signature" in page
    webhook.refresh_from_db()
    assert webhook.failed_count == 1
    assert "bad signature" in webhook.last_error


def test_the_admin_retries_a_failed_notification(
    admin_client: Client, webhook: Channel, hook: Receiver
) -> None:
    [notification] = notifications_create(
        [
            Notification(
                channel=webhook,
                event="firing",
                severity=Severity.ERROR,
                payload=notification_test_payload(severity=Severity.ERROR, message="x"),
            )
        ],
        at=timezone.now(),
    )
    hook.script = [Answer(400, body=b"malformed")]
    assert notification_deliver(notification_id=notification.pk).state == "failed"

    admin_client.post(
        "/admin/alerts/notification/",
        {"action": "retry", "_selected_action": [notification.pk]},
    )
    assert notification_deliver(notification_id=notification.pk).state == "sent"

    page = admin_client.get(f"/admin/alerts/notification/{notification.pk}/change/")
    text = page.content.decode()
    assert "malformed" in text  # the delivery log keeps every attempt
    assert DeliveryAttempt.objects.filter(notification=notification).count() == 2


def test_the_api_sends_a_test_through_each_chosen_channel_and_reports_each_result(
    webhook: Channel, hook: Receiver
) -> None:
    other = Channel(name="gone", kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/gone"})
    other.secrets = {"signing_secret": signing_secret_new()}
    other.save()
    hook.script = [Answer(200), Answer(410, body=b"gone")]
    api = token_client(make_user("olga", "alerts.send_test"))

    response = api.post("/api/v1/alerts/test", {"channels": ["ops", str(other.pk)]}, format="json")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["name"], r["ok"], r["status"]) for r in results] == [
        ("ops", True, 200), ("gone", False, 410),
    ]  # fmt: skip
    assert [r.path for r in hook.requests] == ["/ops", "/gone"]
    assert Notification.objects.filter(event="test").count() == 2


def test_the_api_names_an_unknown_channel_and_sends_nothing(
    webhook: Channel, hook: Receiver
) -> None:
    api = token_client(make_user("olga", "alerts.send_test"))

    response = api.post("/api/v1/alerts/test", {"channels": ["ops", "nope"]}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"index": 1, "field": "channels", "message": "No channel 'nope'."}]
    }
    assert hook.requests == []


def test_the_api_refuses_a_test_without_the_permission(webhook: Channel) -> None:
    viewer: APIClient = token_client(make_user("vic", "alerts.view_alert"))

    response = viewer.post("/api/v1/alerts/test", {"channels": ["ops"]}, format="json")

    assert response.status_code == 403
    assert "alerts.send_test" in response.json()["errors"][0]["message"]


def test_the_api_never_answers_5xx_to_a_malformed_test_request(webhook: Channel) -> None:
    api = token_client(make_user("olga", "alerts.send_test"))

    bodies: list[dict[str, Any]] = [
        {}, {"channels": []}, {"channels": "ops"}, {"channels": [{"a": 1}]},
        {"channels": ["ops"], "severity": "LOUD"},
    ]  # fmt: skip
    for body in bodies:
        response = api.post("/api/v1/alerts/test", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["errors"][0]["field"] in ("channels", "severity")


def test_no_secret_reaches_the_log_of_a_delivery(
    hook: Receiver, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from alerts.channels.masking import SecretURLFilter

    settings.TRADEWATCH_SLACK_BASE_URL = hook.url
    channel = Channel(name="slack", kind=Channel.Kind.SLACK)
    channel.secrets = {"webhook_url": f"{hook.url}{SLACK_PATH}"}
    channel.save()
    hook.script = [Answer(500, body=f"error at {hook.url}{SLACK_PATH}".encode())]

    from alerts.delivery import channel_send_test

    with caplog.at_level("INFO"):
        channel_send_test(channel=channel)

    masking = SecretURLFilter()
    for record in caplog.records:
        masking.filter(record)
        assert "XXXXsecretXXXX" not in record.getMessage()
    assert any("delivery notification=" in r.getMessage() for r in caplog.records)
