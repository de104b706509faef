"""Rule backtest through the API, the admin's "Try on history" and the command line."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.backtest.jobs import job_get, job_run
from alerts.models import Alert, Notification, Rule
from metrics.models import Source
from tests.alerts.conftest import MakeRule, record
from tests.factories import make_user, token_client

pytestmark = pytest.mark.django_db

WARNING, CRITICAL = 30, 50


@pytest.fixture
def history(source: Source, make_rule: MakeRule) -> Rule:
    """A two-tier rule and an hour of drawdown that climbs into CRITICAL and falls back."""
    rule = make_rule(name="Drawdown", thresholds=[(WARNING, ">", 10, 8), (CRITICAL, ">", 20, 18)])
    start = timezone.now() - timedelta(hours=1)
    for minute in range(60):
        value = 25.0 if 20 <= minute < 25 else 12.0 if 15 <= minute < 35 else 3.0
        record(source, "drawdown_pct", value, ts=start + timedelta(minutes=minute, seconds=1))
    return rule


def since(hours: float) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat()


def test_it_answers_a_short_backtest_at_once(history: Rule, source: Source) -> None:
    api = token_client(make_user("vic", "alerts.view_rule"))
    counts = (Alert.objects.count(), Notification.objects.count())

    answer = api.post(
        f"/api/v1/rules/{history.pk}/backtest",
        {"sources": ["alpha-bot"], "from": since(2),
         "thresholds": [{"severity": "warning", "comparison": ">", "value": 22}]},
        format="json",
    )  # fmt: skip

    assert answer.status_code == 200, answer.json()
    body = answer.json()
    current, edited = body["runs"]
    assert [a["peak_severity"] for a in current["alerts"]] == ["critical"]
    assert current["alerts"][0]["peak_value"] == 25.0
    assert [a["peak_severity"] for a in edited["alerts"]] == ["warning"]
    assert body["sources"] == [{"id": source.pk, "name": "alpha-bot"}]
    assert body["charts"][0]["points"]
    assert (Alert.objects.count(), Notification.objects.count()) == counts


def test_it_names_the_fields_it_refuses(history: Rule) -> None:
    api = token_client(make_user("vic", "alerts.view_rule"))

    def errors(body: dict[str, Any]) -> set[str]:
        answer = api.post(f"/api/v1/rules/{history.pk}/backtest", body, format="json")
        assert answer.status_code == 400
        return {error["field"] for error in answer.json()["errors"]}

    assert errors({}) == {"from"}
    assert errors({"from": since(24 * 90)}) == {"from"}  # beyond retention
    assert errors({"from": since(1), "to": since(2)}) == {"from"}
    assert errors({"from": since(1), "sources": ["ghost"]}) == {"sources"}
    bad_tier = {"severity": "loud", "comparison": ">", "value": 1}
    assert errors({"from": since(1), "thresholds": [bad_tier]}) == {"thresholds"}
    contradicting = [
        {"severity": "warning", "comparison": ">", "value": 20},
        {"severity": "critical", "comparison": ">", "value": 10},
    ]
    assert errors({"from": since(1), "thresholds": contradicting}) == {"thresholds"}


def test_only_people_who_may_view_rules_may_backtest(history: Rule) -> None:
    nobody = token_client(make_user("nobody"))
    body = {"from": since(1)}

    assert (
        nobody.post(f"/api/v1/rules/{history.pk}/backtest", body, format="json").status_code == 403
    )
    viewer = token_client(make_user("vic", "alerts.view_rule"))
    assert viewer.post("/api/v1/rules/99999/backtest", body, format="json").status_code == 404


def test_a_long_period_is_a_job_for_a_worker(history: Rule) -> None:
    api = token_client(make_user("vic", "alerts.view_rule"))

    answer = api.post(
        f"/api/v1/rules/{history.pk}/backtest", {"from": since(24 * 7)}, format="json"
    )

    assert answer.status_code == 202
    job = answer.json()
    assert job["status"] == "queued"
    assert answer["Location"] == job["url"] == f"/api/v1/backtests/{job['job']}"
    job_run(job["job"])  # what the worker's task runs
    done = api.get(job["url"]).json()
    assert (done["status"], done["progress"]) == ("done", 1.0)
    assert [a["peak_severity"] for a in done["result"]["runs"][0]["alerts"]] == ["critical"]
    assert api.get("/api/v1/backtests/nope").status_code == 404


def test_the_rule_page_tries_it_on_history_in_a_worker(history: Rule, source: Source) -> None:
    import importlib

    from django.apps import apps
    from django.db import DEFAULT_DB_ALIAS

    importlib.import_module("monitoring_site.migrations.0001_groups").groups_grant(
        apps, DEFAULT_DB_ALIAS
    )
    viewer = make_user("viewer", is_staff=True)
    viewer.groups.add(Group.objects.get(name="Viewer"))
    browser = Client()
    browser.force_login(viewer)
    page = reverse("admin:alerts_rule_backtest", args=[history.pk])

    change = browser.get(reverse("admin:alerts_rule_change", args=[history.pk]))
    assert page in change.content.decode()
    form = browser.get(page + "?edit=30,>,22,;50,>,40,")
    assert form.status_code == 200
    assert 'value="22"' in form.content.decode()

    sent = browser.post(
        page,
        {"sources": [source.pk], "period": "1d", "try_edit": "on",
         "comparison_30": ">", "value_30": "22", "clear_30": ""},
    )  # fmt: skip
    assert sent.status_code == 302
    job_page = sent["Location"]
    job_id = job_page.rstrip("/").rsplit("/", 1)[-1]
    waiting = browser.get(job_page).content.decode()
    assert "backtest-progress" in waiting
    assert browser.get(job_page + "progress").json()["status"] == "queued"

    job_run(job_id)

    done = browser.get(job_page).content.decode()
    assert "<svg" in done
    assert 'class="span current"' in done
    assert 'class="span edited"' in done
    assert "CRITICAL" in done
    assert job_get(job_id) is not None


def test_the_command_line_prints_what_it_would_have_done(history: Rule) -> None:
    out = io.StringIO()

    call_command(
        "tradewatch", "backtest", "Drawdown", "--source", "alpha-bot", "--since", "2h",
        "--threshold", "warning > 22", "--no-color", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip

    text = out.getvalue()
    assert "Current thresholds (critical > 20 clear 18; warning > 10 clear 8): 1 alert(s)" in text
    assert "Edited thresholds (warning > 22): 1 alert(s)" in text
    assert "CRITICAL" in text
    assert "alpha-bot" in text

    as_json = io.StringIO()
    call_command("tradewatch", "backtest", str(history.pk), "--since", "2h", "--json",
                 stdout=as_json, stderr=io.StringIO())  # fmt: skip
    assert json.loads(as_json.getvalue())["runs"][0]["summary"]["alerts"] == 1


def test_the_command_line_says_why_it_refuses(history: Rule) -> None:
    err = io.StringIO()

    call_command(
        "tradewatch", "backtest", "Drawdown", "--since", "40d", stdout=io.StringIO(), stderr=err
    )

    assert err.getvalue().startswith("from: Samples are kept 30 days")
