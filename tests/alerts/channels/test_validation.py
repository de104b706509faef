"""Every kind's `validate` names the field that is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from alerts.channels.base import ChannelKind
from alerts.channels.registry import KINDS, channel_kind, kind_choices
from alerts.channels.signing import signing_secret_new

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK = "https://hooks.slack.com/services/T0001/B0002/secretXyZ9"
DISCORD = "https://discord.com/api/webhooks/1234567890/tokenXyZ9"
EMAIL: dict[str, Any] = {
    "to": ["risk@example.com"],
    "from_address": "tradewatch@example.com",
    "host": "127.0.0.1",  # loopback is allowed in the test settings
    "port": 587,
    "use_tls": True,
}
WEBHOOK_URL = "http://127.0.0.1:9/hook"  # loopback is allowed in the test settings

VALID: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("console", {}, {}),
    ("jsonl", {"path": "/var/log/tradewatch/alerts.jsonl", "max_bytes": 4096, "backups": 3}, {}),
    ("email", EMAIL, {}),
    ("email", {**EMAIL, "username": "tw"}, {"password": "pw"}),
    ("slack", {}, {"webhook_url": SLACK}),
    ("discord", {}, {"webhook_url": DISCORD}),
    ("telegram", {"chat_id": "-100123"}, {"bot_token": BOT_TOKEN}),
    ("telegram", {"chat_id": "@trading_alerts"}, {"bot_token": BOT_TOKEN}),
    ("webhook", {"url": WEBHOOK_URL}, {"signing_secret": signing_secret_new()}),
    ("apprise", {}, {"url": "json://127.0.0.1:9/notify"}),
    ("apprise", {}, {"url": f"tgram://{BOT_TOKEN}/42"}),
]


@pytest.mark.parametrize(("kind", "config", "secrets"), VALID)
def test_it_accepts_a_valid_configuration(
    kind: str, config: dict[str, Any], secrets: dict[str, str]
) -> None:
    channel_kind(kind).validate(config, secrets)


@pytest.mark.parametrize(
    ("kind", "config", "secrets", "field"),
    [
        ("console", {"colour": "yes"}, {}, "colour"),
        ("jsonl", {}, {}, "path"),
        ("jsonl", {"path": "relative/alerts.jsonl"}, {}, "path"),
        ("jsonl", {"path": "/home/trader/.bashrc"}, {}, "path"),
        ("jsonl", {"path": "/var/log/tradewatch/a.jsonl", "max_bytes": 10}, {}, "max_bytes"),
        ("jsonl", {"path": "/var/log/tradewatch/a.jsonl", "backups": -1}, {}, "backups"),
        ("email", {**EMAIL, "to": []}, {}, "to"),
        ("email", {**EMAIL, "to": ["not-an-address"]}, {}, "to"),
        ("email", {**EMAIL, "from_address": "nobody"}, {}, "from_address"),
        ("email", {**EMAIL, "host": ""}, {}, "host"),
        ("email", {**EMAIL, "port": 70000}, {}, "port"),
        ("email", {**EMAIL, "use_ssl": True}, {}, "use_ssl"),
        ("email", {**EMAIL, "username": "tw"}, {}, "password"),
        ("slack", {}, {}, "webhook_url"),
        (
            "slack",
            {},
            {"webhook_url": "https://hooks.slack.com.evil.example/services/x"},
            "webhook_url",
        ),
        ("slack", {}, {"webhook_url": "https://example.com/services/T/B/x"}, "webhook_url"),
        ("discord", {}, {"webhook_url": "https://discord.com/channels/1/2"}, "webhook_url"),
        ("telegram", {"chat_id": "42"}, {"bot_token": "not-a-token"}, "bot_token"),
        ("telegram", {"chat_id": "my chat"}, {"bot_token": BOT_TOKEN}, "chat_id"),
        ("webhook", {}, {"signing_secret": signing_secret_new()}, "url"),
        ("webhook", {"url": "ftp://example.com/"}, {"signing_secret": signing_secret_new()}, "url"),
        ("webhook", {"url": WEBHOOK_URL}, {}, "signing_secret"),
        ("webhook", {"url": WEBHOOK_URL}, {"signing_secret": "plain-secret"}, "signing_secret"),
        ("webhook", {"url": WEBHOOK_URL}, {"signing_secret": "whsec_c2hvcnQ="}, "signing_secret"),
        (
            "webhook",
            {"url": WEBHOOK_URL},
            {"signing_secret": signing_secret_new(), "previous_signing_secret": "whsec_!!"},
            "previous_signing_secret",
        ),
        ("apprise", {}, {}, "url"),
        ("apprise", {}, {"url": "nonsense://what"}, "url"),
    ],
)
def test_it_names_the_wrong_field(
    kind: str, config: dict[str, Any], secrets: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        channel_kind(kind).validate(config, secrets)

    assert field in caught.value.message_dict


@pytest.mark.usefixtures("nothing_allowed")
def test_it_refuses_a_webhook_aimed_inside_on_save() -> None:
    with pytest.raises(ValidationError) as caught:
        channel_kind("webhook").validate(
            {"url": "http://2130706433/"}, {"signing_secret": signing_secret_new()}
        )

    assert "loopback" in caught.value.message_dict["url"][0]


def test_it_registers_every_kind_under_its_name() -> None:
    assert sorted(KINDS) == [
        "apprise",
        "console",
        "discord",
        "email",
        "jsonl",
        "recovery",
        "slack",
        "telegram",
        "webhook",
    ]
    for name, kind in KINDS.items():
        assert issubclass(kind, ChannelKind)
        assert kind.kind == name
        assert kind.label
        assert set(kind.secret_fields).isdisjoint(kind.config_fields)
    assert ("webhook", "Webhook") in kind_choices()


def test_it_names_the_kinds_for_an_unknown_one() -> None:
    with pytest.raises(LookupError, match="apprise, console"):
        channel_kind("pager")
