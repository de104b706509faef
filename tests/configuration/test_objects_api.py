"""`/api/v1/config/<section>[/<name>]`: one object of configuration at a time."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from alerts.models import Channel, Rule
from audit.models import ChannelEvent, RuleEvent
from metrics.models import HEARTBEAT_PERIOD_TOO_SHORT, Source, SourceAPIKey
from tests.configuration.conftest import SLACK_URL
from tests.factories import make_user, token_client

pytestmark = pytest.mark.django_db

RULE = {
    "name": "Leverage cap",
    "metric": "leverage",
    "thresholds": [
        {"severity": "critical", "value": 5},
        {"severity": "warning", "value": 3, "overrides": [{"source": "eth-maker", "value": 4}]},
    ],
}


@pytest.fixture
def risk_owner() -> User:
    Source.objects.create(name="eth-maker")
    return make_user("risk-owner", groups=["Admin"])


def test_it_creates_reads_replaces_and_deletes_a_rule(risk_owner: User) -> None:
    client = token_client(risk_owner)

    created = client.post("/api/v1/config/rules", RULE, format="json")
    read = client.get("/api/v1/config/rules/Leverage cap")
    replaced = client.put(
        "/api/v1/config/rules/Leverage cap", {**RULE, "enabled": False, "thresholds": []},
        format="json",
    )  # fmt: skip
    again = client.post("/api/v1/config/rules", RULE, format="json")
    deleted = client.delete("/api/v1/config/rules/Leverage cap")
    gone = client.get("/api/v1/config/rules/Leverage cap")

    assert created.status_code == 201, created.content
    assert read.json() == created.json()
    assert created.json()["thresholds"][1] == {
        "severity": "WARNING", "comparison": ">", "value": 3.0, "clear_value": None,
        "action": "",
        "overrides": [{"source": "eth-maker", "value": 4.0, "clear_value": None,
                       "enabled": True}],
    }  # fmt: skip
    assert replaced.status_code == 200
    assert (replaced.json()["enabled"], replaced.json()["thresholds"]) == (False, [])
    assert again.status_code == 409
    assert deleted.status_code == 204
    assert gone.status_code == 404
    assert not Rule.objects.filter(name="Leverage cap").exists()
    contexts = {
        e.pgh_context.metadata["via"] for e in RuleEvent.objects.filter(name="Leverage cap")
    }
    assert contexts == {"configuration API"}


def test_it_answers_the_models_messages_by_field(risk_owner: User) -> None:
    client = token_client(risk_owner)

    wrong_type = client.post(
        "/api/v1/config/rules", {**RULE, "window": "soon", "min_samples": "x"}, format="json"
    )
    too_short = client.put(
        "/api/v1/config/sources/btc-bot", {"heartbeat_period": "0.5s"}, format="json"
    )

    assert wrong_type.status_code == 400
    assert wrong_type.json()["errors"] == [
        {"index": None, "field": "min_samples", "message": "must be a whole number"},
        {"index": None, "field": "window",
         "message": "must be a duration such as 30s, 5m, 1h30m, 1d or a number of seconds"},
    ]  # fmt: skip
    assert too_short.json()["errors"] == [
        {"index": None, "field": "heartbeat_period", "message": HEARTBEAT_PERIOD_TOO_SHORT}
    ]
    assert not Source.objects.filter(name="btc-bot").exists()


def test_it_takes_channel_secrets_and_never_answers_them(risk_owner: User) -> None:
    client = token_client(risk_owner)
    body = {"name": "ops", "kind": "slack", "secrets": {"webhook_url": SLACK_URL}}

    created = client.post("/api/v1/config/channels", body, format="json")
    listed = client.get("/api/v1/config/channels")
    kept = client.put("/api/v1/config/channels/ops", {"kind": "slack"}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["secrets_set"] == ["webhook_url"]
    assert kept.status_code == 200
    assert Channel.objects.get(name="ops").secrets == {"webhook_url": SLACK_URL}
    for answer in (created, listed, kept):
        assert SLACK_URL not in answer.content.decode()
        assert 'secrets"' not in answer.content.decode()
    assert ChannelEvent.objects.filter(name="ops", pgh_label="secrets_changed").count() == 0


def test_it_issues_a_source_key_once_and_revokes_them(risk_owner: User) -> None:
    client = token_client(risk_owner)

    issued = client.post("/api/v1/config/sources/eth-maker/keys")
    listed = client.get("/api/v1/config/sources/eth-maker")
    key = issued.json()["key"]
    worked = SourceAPIKey.objects.is_valid(key)
    revoked = client.delete("/api/v1/config/sources/eth-maker/keys")

    assert issued.status_code == 201
    assert worked is True
    assert key not in listed.content.decode()
    assert revoked.json() == {"revoked": 1}
    assert SourceAPIKey.objects.is_valid(key) is False


@pytest.mark.parametrize("group", ["Operator", "Viewer"])
def test_it_lets_operators_and_viewers_read_but_not_edit(risk_owner: User, group: str) -> None:
    client = token_client(make_user(f"someone-{group.lower()}", groups=[group]))

    read = client.get("/api/v1/config/rules")
    refused = client.post("/api/v1/config/rules", RULE, format="json")
    not_deleted = client.delete("/api/v1/config/sources/eth-maker")
    no_key = client.post("/api/v1/config/sources/eth-maker/keys")

    assert read.status_code == 200
    assert {r["name"] for r in read.json()} >= {"Drawdown", "Heartbeat lapsed"}
    assert refused.status_code == not_deleted.status_code == no_key.status_code == 403
    assert "alerts.add_rule" in refused.json()["errors"][0]["message"]
    assert not Rule.objects.filter(name="Leverage cap").exists()
    assert Source.objects.filter(name="eth-maker").exists()


def test_it_refuses_text_the_database_cannot_store_before_any_query(risk_owner: User) -> None:
    client = token_client(risk_owner)

    refused = client.generic(
        "POST", "/api/v1/config/schedules",
        '{"name": "ny\\u0000se", "kind": "always", "description": "\\u0000"}',
        content_type="application/json",
    )  # fmt: skip

    assert refused.status_code == 400
    assert [error["field"] for error in refused.json()["errors"]] == ["name", "description"]
