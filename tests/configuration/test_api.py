"""`POST /api/v1/config/apply` and `GET /api/v1/config/export`: files over the API."""

from __future__ import annotations

import logging

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from alerts.models import Channel, Rule
from audit.models import RuleEvent
from tests.configuration.conftest import DESK_ENV, SLACK_URL
from tests.factories import make_user, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _desk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DESK_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def risk_owner() -> User:
    return make_user("risk-owner", groups=["Admin"])


def test_it_answers_a_dry_run_plan_and_applies_nothing(risk_owner: User, desk_text: str) -> None:
    answer = token_client(risk_owner).post(
        "/api/v1/config/apply", {"file": desk_text, "dry_run": True}, format="json"
    )

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["applied"] is False
    assert body["summary"] == {"created": 8, "changed": 0, "unchanged": 0, "deleted": 0}
    assert {"section": "rules", "name": "Desk drawdown", "action": "created", "changes": []} in (
        body["objects"]
    )
    assert not Rule.objects.filter(name="Desk drawdown").exists()


def test_it_applies_a_file_recorded_as_the_person_through_the_api(
    risk_owner: User, desk_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = token_client(risk_owner)

    answer = client.post("/api/v1/config/apply", {"file": desk_text}, format="json")
    rotated = desk_text.replace("value: 8\n", "value: 9\n")
    again = client.post("/api/v1/config/apply", {"file": rotated}, format="json")

    assert answer.status_code == again.status_code == 200
    assert answer.json()["applied"] is True
    changed = [o for o in again.json()["objects"] if o["action"] == "changed"]
    assert changed == [{
        "section": "rules", "name": "Desk drawdown", "action": "changed",
        "changes": [{"field": "thresholds[WARNING].value", "old": 8.0, "new": 9.0,
                     "secret": False}],
    }]  # fmt: skip
    event = RuleEvent.objects.filter(name="Desk drawdown").select_related("pgh_context").first()
    assert event is not None
    assert event.pgh_context.metadata["user"] == risk_owner.pk
    assert event.pgh_context.metadata["via"] == "config apply (API)"
    assert SLACK_URL not in answer.content.decode() + again.content.decode()
    assert SLACK_URL not in caplog.text


def test_it_answers_each_problem_with_its_path(risk_owner: User, desk_text: str) -> None:
    bad = desk_text.replace("value: 8\n", "value: eight\n").replace(
        "${SLACK_WEBHOOK_URL}", "${NOT_SET_ANYWHERE}"
    )

    client = token_client(risk_owner)
    answer = client.post("/api/v1/config/apply", {"file": bad}, format="json")
    fixed_value = bad.replace("value: eight\n", "value: 8\n")
    missing = client.post("/api/v1/config/apply", {"file": fixed_value}, format="json")

    assert answer.status_code == 400
    assert answer.json() == {"errors": [{
        "index": None, "field": "rules[0].thresholds[1].value", "message": "must be a number",
    }]}  # fmt: skip
    assert missing.json()["errors"] == [{
        "index": None, "field": "channels[0].secrets.webhook_url",
        "message": "the environment variable NOT_SET_ANYWHERE is not set (or empty)",
    }]  # fmt: skip
    assert not Channel.objects.filter(name="desk-slack").exists()


@pytest.mark.parametrize("group", ["Operator", "Viewer"])
def test_it_refuses_to_apply_for_operators_and_viewers(group: str, desk_text: str) -> None:
    person = make_user(f"someone-{group.lower()}", groups=[group])

    answer = token_client(person).post("/api/v1/config/apply", {"file": desk_text}, format="json")

    assert answer.status_code == 403
    assert "Admin group" in answer.json()["errors"][0]["message"]
    assert not Rule.objects.filter(name="Desk drawdown").exists()


def test_it_exports_for_viewers_without_secrets(risk_owner: User, desk_text: str) -> None:
    token_client(risk_owner).post("/api/v1/config/apply", {"file": desk_text}, format="json")
    viewer = make_user("auditor", groups=["Viewer"])

    answer = token_client(viewer).get("/api/v1/config/export", {"only": ["channels", "rules"]})

    assert answer.status_code == 200
    exported = yaml.safe_load(answer.json()["file"])
    assert list(exported) == ["version", "channels", "rules"]
    assert exported["channels"][0]["secrets"] == {"webhook_url": "${SLACK_WEBHOOK_URL}"}
    assert SLACK_URL not in answer.content.decode()


def test_it_refuses_a_source_key_and_nobody() -> None:
    anonymous = APIClient().get("/api/v1/config/export")
    keyed = APIClient(HTTP_AUTHORIZATION="Api-Key AbCd1234.nope").get("/api/v1/config/export")

    assert anonymous.status_code == keyed.status_code == 401
