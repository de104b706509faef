"""Schedules as code: the `schedules` section, and the schedules of sources, their
expectations, rules and silences, in files and through the configuration API."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.contrib.auth.models import User

from alerts.models import Rule, Silence
from configuration.document import DocumentInvalid
from configuration.plan import CREATED
from configuration.schema import config_schema_text, schema_problems
from configuration.services import config_apply, config_export
from metrics.models import Expectation, Schedule, Source
from tests.factories import make_user, token_client

pytestmark = pytest.mark.django_db

FILE = """
version: 1
schedules:
- name: nyse
  kind: exchange
  exchange: nyse
- name: maintenance
  kind: weekly
  windows: ["Sun 2:00-04:00"]
  description: The exchange's Sunday maintenance
sources:
- name: spy-bot
  schedule: nyse
  expectations:
  - signal: order
    grace: 20m
  - signal: market_data
    schedule: maintenance
    enabled: false
rules:
- name: Quotes stale
  kind: absence
  metric: quotes
  schedule: nyse
  thresholds:
  - severity: WARNING
    value: 600
silences:
- reason: every Sunday
  starts_at: 2025-11-01T00:00:00Z
  schedule: maintenance
"""


def test_it_applies_schedules_and_what_follows_them_and_exports_them_one_way() -> None:
    result = config_apply(text=FILE, environ={})

    created = {(p.section, p.key) for p in result.plan.objects if p.action == CREATED}
    assert {("schedules", "nyse"), ("schedules", "maintenance")} <= created
    nyse = Schedule.objects.get(name="nyse")
    assert nyse.exchange == "XNYS"  # the alias, read as the calendar's code
    assert Schedule.objects.get(name="maintenance").windows == ["sun 02:00-04:00"]
    bot = Source.objects.get(name="spy-bot")
    assert bot.schedule == nyse
    order = Expectation.objects.get(source=bot, signal="order")
    assert (order.grace, order.schedule, order.enabled) == (timedelta(minutes=20), None, True)
    assert not Expectation.objects.get(source=bot, signal="market_data").enabled
    assert Rule.objects.get(name="Quotes stale").schedule == nyse
    silence = Silence.objects.get(reason="every Sunday")
    assert (silence.ends_at, silence.schedule) == (None, Schedule.objects.get(name="maintenance"))

    exported = yaml.safe_load(config_export(sections=["schedules", "sources", "silences"]))
    assert exported["schedules"] == [
        {"name": "maintenance", "kind": "weekly", "windows": ["sun 02:00-04:00"],
         "description": "The exchange's Sunday maintenance"},
        {"name": "nyse", "kind": "exchange", "exchange": "XNYS"},
    ]  # fmt: skip
    spy = next(source for source in exported["sources"] if source["name"] == "spy-bot")
    assert spy["schedule"] == "nyse"
    assert spy["expectations"] == [
        {"signal": "market_data", "schedule": "maintenance", "enabled": False},
        {"signal": "order", "grace": "20m"},
    ]
    assert exported["silences"] == [
        {"reason": "every Sunday", "starts_at": "2025-11-01T00:00:00Z", "schedule": "maintenance"}
    ]
    assert not config_apply(text=FILE, environ={}).plan.changes_anything


def test_it_names_a_wrong_exchange_window_or_schedule_and_applies_nothing() -> None:
    data = yaml.safe_load(FILE)
    data["schedules"][0]["exchange"] = "XNYZ"
    data["schedules"][1]["windows"] = ["sunday at two"]
    data["sources"][0]["schedule"] = "lse"

    with pytest.raises(DocumentInvalid) as schema_refused:
        config_apply(text=yaml.safe_dump(data), environ={})
    data["schedules"][1]["windows"] = ["sun 02:00-04:00"]
    with pytest.raises(DocumentInvalid) as references_refused:
        config_apply(text=yaml.safe_dump(data), environ={})
    data["sources"][0]["schedule"] = "nyse"
    with pytest.raises(DocumentInvalid) as models_refused:
        config_apply(text=yaml.safe_dump(data), environ={})

    assert schema_refused.value.problems == [
        ("schedules[1].windows[0]",
         "must be a weekly window such as mon-fri 09:30-16:00 or sun 02:00-04:00"),
    ]  # fmt: skip
    assert references_refused.value.problems == [
        ("sources[0].schedule", "no schedule named 'lse', in the file or in Tradewatch"),
    ]
    [(path, message)] = models_refused.value.problems
    assert path == "schedules[0].exchange"
    assert message.startswith("'XNYZ' is not an exchange calendar")
    assert not Schedule.objects.exists()


def test_a_silence_in_a_file_needs_an_end_or_a_schedule() -> None:
    data = yaml.safe_load(FILE)
    del data["silences"][0]["schedule"]

    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=yaml.safe_dump(data), environ={})

    [(path, message)] = refused.value.problems
    assert path == "silences[0]"
    assert "an end time" in message
    assert "or a schedule" in message


def test_pruning_keeps_a_schedule_something_still_follows() -> None:
    config_apply(text=FILE, environ={})
    only_schedules = (
        "version: 1\nschedules:\n- name: maintenance\n  kind: weekly\n"
        "  windows: [sun 02:00-04:00]\n  description: The exchange's Sunday maintenance\n"
    )

    with pytest.raises(DocumentInvalid) as refused:
        config_apply(text=only_schedules, environ={}, prune=True)

    [(path, message)] = refused.value.problems
    assert path == "schedules.nyse"
    assert message.startswith("cannot be deleted: still used by")
    assert Schedule.objects.filter(name="nyse").exists()


def test_the_shipped_schema_carries_schedules() -> None:
    from configuration.schema import SCHEMA_FILE

    assert SCHEMA_FILE.read_text() == config_schema_text()
    assert schema_problems({"version": 1, "schedules": [{"name": "x", "kind": "lunar"}]}) == [
        ("schedules[0].kind", "must be one of always, exchange, weekly"),
    ]


# --- the configuration API -----------------------------------------------------------------


@pytest.fixture
def risk_owner() -> User:
    return make_user("risk-owner", groups=["Admin"])


def test_schedules_are_objects_of_the_configuration_api(risk_owner: User) -> None:
    client = token_client(risk_owner)
    body = {"name": "lse", "kind": "exchange", "exchange": "XLON"}

    created = client.post("/api/v1/config/schedules", body, format="json")
    source = client.put(
        "/api/v1/config/sources/ftse-bot",
        {"schedule": "lse", "expectations": [{"signal": "decision", "grace": "10m"}]},
        format="json",
    )
    in_use = client.delete("/api/v1/config/schedules/lse")
    bad = client.put(
        "/api/v1/config/schedules/odd", {"kind": "weekly", "timezone": "Mars/Olympus",
                                          "windows": ["mon 10:00-11:00"]}, format="json",
    )  # fmt: skip

    assert created.status_code == 201, created.content
    assert created.json() == {
        "name": "lse", "kind": "exchange", "exchange": "XLON", "timezone": "UTC",
        "windows": [], "invert": False, "description": "",
    }  # fmt: skip
    assert source.status_code == 200, source.content
    assert source.json()["expectations"] == [
        {"signal": "decision", "grace": "10m", "schedule": None, "enabled": True}
    ]
    assert in_use.status_code == 409
    assert "still used by ftse-bot" in in_use.json()["errors"][0]["message"]
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "timezone"


def test_the_schedules_endpoint_says_when_each_opens_and_closes() -> None:
    viewer = make_user("viewer", groups=["Viewer"])
    Schedule.objects.create(name="nyse", kind="exchange", exchange="XNYS")
    Schedule.objects.create(name="maintenance", kind="weekly", windows=["sun 02:00-04:00"])

    client = token_client(viewer)
    answer = client.get("/api/v1/schedules", {"at": "2025-11-27T17:00:00Z"})

    assert answer.status_code == 200, answer.content
    by_name = {row["name"]: row for row in answer.json()["schedules"]}
    assert by_name["nyse"] == {
        "name": "nyse", "kind": "exchange", "describe": "XNYS sessions", "open": False,
        "next_open": "2025-11-28T14:30:00Z", "next_close": "2025-11-28T18:00:00Z",
    }  # fmt: skip
    assert by_name["maintenance"]["next_open"] == "2025-11-30T02:00:00Z"
    refused = client.get("/api/v1/schedules", {"at": "yesterday"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "at"
