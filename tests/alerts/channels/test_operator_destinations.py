"""The destination check as operators meet it: saving a channel in the admin, and
"send test" through the API, for Apprise and email channels aimed inside the network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from alerts.models import Channel
from tests.alerts.channels.conftest import Listener
from tests.factories import make_user, token_client

pytestmark = pytest.mark.django_db


def channel_form(kind: str, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "inside", "kind": kind, "enabled": "on", "min_severity": 30,
        "config": json.dumps(config), "secrets": json.dumps(secrets), "rate_limit": 30,
        "rate_window": "00:01:00",
    }  # fmt: skip


def email_config(port: int, host: str = "localhost") -> dict[str, Any]:
    return {
        "to": ["risk@example.com"],
        "from_address": "tradewatch@example.com",
        "host": host,
        "port": port,
    }


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    ("kind", "config", "secrets", "expected"),
    [
        ("apprise", {}, {"url": "hassio://localhost:8123/token"}, "secrets"),
        ("apprise", {}, {"url": "bark://0x7f000001/device"}, "secrets"),
        ("email", email_config(25, "169.254.169.254"), {}, "config"),
        ("email", email_config(25, "10.0.0.1"), {}, "config"),
    ],
)
def test_the_admin_refuses_a_channel_aimed_inside_and_says_why(
    admin_client: Client, kind: str, config: dict[str, Any], secrets: dict[str, str], expected: str
) -> None:
    response = admin_client.post("/admin/alerts/channel/add/", channel_form(kind, config, secrets))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    [message] = errors[expected]
    assert "channels may not deliver there" in message
    assert not Channel.objects.exists()


def saved(kind: str, config: dict[str, Any], secrets: dict[str, str]) -> Channel:
    # Saved while the network was allowed (tests/settings.py allows loopback); an
    # operator has since taken the allowance away.
    channel = Channel(name=f"inside-{kind}", kind=kind, config=config)
    channel.secrets = secrets
    channel.full_clean()
    channel.save()
    return channel


@pytest.mark.parametrize("kind", ["apprise", "email"])
def test_send_test_does_not_reach_a_port_inside_once_the_network_is_no_longer_allowed(
    listener: Listener, settings: Settings, kind: str
) -> None:
    if kind == "apprise":
        channel = saved("apprise", {}, {"url": f"signal://localhost:{listener.port}/+12345678901"})
    else:
        channel = saved("email", email_config(listener.port), {})
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = []
    api = token_client(make_user("olga", "alerts.send_test"))

    response = api.post("/api/v1/alerts/test", {"channels": [channel.name]}, format="json")

    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert not result["ok"]
    assert result["error"].startswith("Destination refused: 127.0.0.1 is a loopback address")
    assert listener.connections() == 0
