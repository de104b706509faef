"""The operator health API: status rollup with source scores, and the safety view."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.evaluation import forget_rules_cache
from alerts.models import Alert, Rule, Severity
from core.operator_api import SOURCE_KEY_ON_OPERATOR_ENDPOINT
from health.models import HealthCheck
from health.scoring import Status
from metrics.ingest import event_ingest, heartbeat_record
from metrics.models import Source
from metrics.services import system_source
from metrics.validation import EventIn, HeartbeatIn
from tests.alerts.conftest import record
from tests.factories import SourceFactory, make_alert, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer() -> APIClient:
    user = make_user("viewer", "health.view_healthcheck", password="pw")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_it_refuses_anonymous_people_and_those_without_the_permission(
    api_client: APIClient, django_user_model: type[User]
) -> None:
    assert api_client.get("/api/v1/health/status").status_code in (401, 403)
    someone = django_user_model.objects.create_user("someone", password="pw")
    api_client.force_authenticate(someone)
    response = api_client.get("/api/v1/health/safety")
    assert response.status_code == 403
    assert response.json()["errors"][0]["message"].startswith("You need the permission")


def test_it_refuses_a_sources_api_key_saying_what_it_takes(source_client: APIClient) -> None:
    response = source_client.get("/api/v1/health/status")

    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == SOURCE_KEY_ON_OPERATOR_ENDPOINT


def test_it_rolls_up_sources_and_checks_worst_first(viewer: APIClient) -> None:
    now = timezone.now()
    healthy = SourceFactory.create(name="calm-bot")
    heartbeat_record(source=healthy, heartbeat=HeartbeatIn("ok", {}, now))
    event_ingest(source=healthy, events=[EventIn("decision", "", {}, now)])
    failing = SourceFactory.create(name="noisy-bot")
    heartbeat_record(source=failing, heartbeat=HeartbeatIn("ok", {}, now))
    record(failing, "error_rate_pct", 8.3)
    record(failing, "cycles", 60)
    event_ingest(source=failing, events=[EventIn("decision", "", {}, now)])
    HealthCheck.objects.create(
        name="gateway", kind="tcp", config={"host": "127.0.0.1", "port": 9}, status="healthy"
    )

    body = viewer.get("/api/v1/health/status").json()
    assert body["status"] == "DEGRADED"
    assert [(s["name"], s["score"], s["status"]) for s in body["sources"]] == [
        ("noisy-bot", 79, "DEGRADED"),
        ("calm-bot", 100, "HEALTHY"),
    ]
    assert body["sources"][0]["issues"] == ["error rate 8.3 % over 60 cycles"]
    assert [(c["name"], c["status"], c["breaker"]) for c in body["checks"]] == [
        ("gateway", "HEALTHY", "closed")
    ]


@override_settings(TRADEWATCH_MAX_OPEN_POSITIONS=10)
def test_it_shows_kill_switch_breaker_positions_and_exchange_per_source(
    viewer: APIClient,
) -> None:
    now = timezone.now()
    source = SourceFactory.create(name="risky-bot")
    event_ingest(
        source=source,
        events=[
            EventIn("circuit_breaker_tripped", "", {}, now - timedelta(minutes=5)),
            EventIn("circuit_breaker_reset", "", {}, now - timedelta(minutes=2)),
            EventIn("connectivity_lost", "", {}, now - timedelta(minutes=1)),
        ],
    )
    record(source, "open_positions", 9)
    record(source, "exchange_latency_ms", 120)
    calm = SourceFactory.create(name="calm-bot")
    event_ingest(source=calm, events=[EventIn("kill_switch_activated", "", {}, now)])

    rows = {row["name"]: row for row in viewer.get("/api/v1/health/safety").json()["sources"]}
    risky = rows["risky-bot"]
    assert risky["status"] == "UNHEALTHY"  # the connection is down
    assert risky["circuit_breaker"] == {"tripped": False, "since": None}
    assert risky["positions"] == {"open": 9.0, "limit": 10, "utilisation_pct": 90.0}
    assert risky["exchange"]["connected"] is False
    assert risky["exchange"]["latency_ms"] == 120
    lost_at = timezone.localtime(now - timedelta(minutes=1)).strftime("%H:%M")
    lost, positions = risky["issues"]  # worst first
    assert re.fullmatch(rf"exchange connection lost since {lost_at} UTC \(6\d s\)", lost)
    assert positions == "positions at 90 % of the limit of 10"
    assert rows["calm-bot"]["status"] == "CRITICAL"
    assert rows["calm-bot"]["kill_switch"]["active"] is True
    assert rows["calm-bot"]["exchange"]["connected"] is None


def test_it_degrades_positions_above_80_percent_only(viewer: APIClient) -> None:
    source = SourceFactory.create(name="busy-bot")
    record(source, "open_positions", 8)
    row = viewer.get("/api/v1/health/safety").json()["sources"][0]
    assert (row["status"], row["positions"]["utilisation_pct"]) == ("HEALTHY", 80.0)
    record(source, "open_positions", 9, ts=timezone.now() + timedelta(seconds=1))
    assert viewer.get("/api/v1/health/safety").json()["sources"][0]["status"] == "DEGRADED"


def test_it_leaves_tradewatchs_own_source_out_of_the_scores(viewer: APIClient) -> None:
    system_source()  # installed with the self-monitoring rules; made here if not
    assert viewer.get("/api/v1/health/status").json()["sources"] == []


def test_it_documents_both_endpoints(viewer: APIClient) -> None:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/health/status" in schema["paths"]
    assert "/api/v1/health/safety" in schema["paths"]


# --- one scoring everywhere: states and alerts cap the score ---------------------------------


@pytest.fixture
def boss(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_superuser("boss", password="pw")


def post_events(client: APIClient, capture: Any, *types: str) -> None:
    """POST events through the ingestion API and run what its commit queued (evaluation)."""
    body = {"events": [{"type": kind, "message": ""} for kind in types]}
    with capture(execute=True):
        answer = client.post("/api/v1/events", json.dumps(body), content_type="application/json")
    assert answer.status_code == 202, answer.content


def everywhere(viewer: APIClient, boss: User, source: Source) -> dict[str, Any]:
    """How the status API, the safety API, the dashboard and the source's page see `source`."""
    status = viewer.get("/api/v1/health/status").json()
    safety = viewer.get("/api/v1/health/safety").json()["sources"]
    admin = Client()
    admin.force_login(boss)
    dashboard = admin.get("/admin/").context["dashboard"]
    page = admin.get(f"/admin/metrics/source/{source.pk}/change/").context["source_score"]
    [scored] = [row for row in status["sources"] if row["id"] == source.pk]
    [safe] = [row for row in safety if row["id"] == source.pk]
    [shown] = [row for row in dashboard["sources"] if row["id"] == source.pk]
    return {
        "status": (scored["score"], scored["status"]),
        "issues": scored["issues"],
        "safety": safe["status"],
        "dashboard": (shown["score"], shown["status_label"]),
        "dashboard_issues": shown["issues"],
        "page": (page.score, page.status.label),
        "rollup": (status["status"], dashboard["system"]["status_label"]),
    }


def ages_blanked(issues: list[str]) -> list[str]:
    return [re.sub(r"\(\d+ s\)", "(N s)", issue) for issue in issues]


def test_it_agrees_everywhere_that_a_killed_tripped_disconnected_source_is_critical(
    viewer: APIClient,
    boss: User,
    source: Source,
    source_client: APIClient,
    django_capture_on_commit_callbacks: Any,
) -> None:
    forget_rules_cache()
    heartbeat_record(source=source, heartbeat=HeartbeatIn("ok", {}, timezone.now()))
    event_ingest(source=source, events=[EventIn("decision", "", {}, timezone.now())])
    before = everywhere(viewer, boss, source)
    assert before["status"] == before["dashboard"] == before["page"] == (100, "HEALTHY")

    post_events(
        source_client,
        django_capture_on_commit_callbacks,
        "kill_switch_activated",
        "circuit_breaker_tripped",
        "connectivity_lost",
    )

    firing = dict(
        Alert.objects.filter(source=source, state="firing").values_list("rule__name", "severity")
    )
    assert firing == {
        "Kill switch activated": Severity.CRITICAL,
        "Circuit breaker tripped": Severity.CRITICAL,
        "Exchange connectivity lost": Severity.ERROR,
    }
    seen = everywhere(viewer, boss, source)
    assert seen["safety"] == "CRITICAL"
    assert seen["status"] == seen["dashboard"] == seen["page"] == (29, "CRITICAL")
    assert seen["rollup"] == ("CRITICAL", "CRITICAL")
    issues = seen["issues"]
    # The same issues in the same order; an age ("(3 s)") may differ by the second that
    # passed between the two reads.
    assert ages_blanked(issues) == ages_blanked(seen["dashboard_issues"][: len(issues)])
    assert re.fullmatch(r"kill switch active since \d\d:\d\d UTC \(\d+ s\)", issues[0])
    assert set(issues[1:3]) == {
        "CRITICAL alert firing: Kill switch activated \u2014 kill switch activated",
        "CRITICAL alert firing: Circuit breaker tripped \u2014 circuit breaker tripped",
    }
    assert issues[3].startswith("circuit breaker tripped since ")
    assert issues[4].startswith("exchange connection lost since ")
    assert issues[5] == (
        "ERROR alert firing: Exchange connectivity lost \u2014 exchange connectivity lost"
    )


def test_it_still_counts_an_acknowledged_alert_and_names_who_acknowledged_it(
    viewer: APIClient, boss: User, source: Source
) -> None:
    beat_and_decide(source)
    alert = open_alert(source, "Daily loss limit", Severity.CRITICAL, "alpha-bot: daily PnL -900")
    operator = APIClient()
    operator.force_authenticate(boss)
    assert operator.post(f"/api/v1/alerts/{alert.pk}/acknowledge", {}).status_code == 200

    seen = everywhere(viewer, boss, source)

    assert seen["status"] == seen["dashboard"] == seen["page"] == (29, "CRITICAL")
    assert seen["issues"] == [
        "CRITICAL alert firing: Daily loss limit \u2014 daily PnL -900 (acknowledged by boss)"
    ]
    assert seen["safety"] == "HEALTHY"  # no safety state holds; the alert is the problem


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.EMERGENCY, (29, "CRITICAL")),
        (Severity.ERROR, (59, "UNHEALTHY")),
        (Severity.WARNING, (79, "DEGRADED")),
        (Severity.INFO, (100, "HEALTHY")),
    ],
)
def test_it_caps_a_source_by_its_worst_firing_alert(
    viewer: APIClient, boss: User, source: Source, severity: int, expected: tuple[int, str]
) -> None:
    beat_and_decide(source)
    open_alert(source, "Drawdown", severity, "alpha-bot: drawdown 22.1 % (limit 20 %)")
    open_alert(source, "Leverage", Severity.EMERGENCY, "pending", state="pending")

    seen = everywhere(viewer, boss, source)

    assert seen["status"] == seen["dashboard"] == seen["page"] == expected
    assert seen["rollup"] == (expected[1], expected[1])


def test_it_reads_the_alerts_of_every_source_in_one_query(viewer: APIClient) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get("/api/v1/health/status").status_code == 200
        return len(captured)

    for n in range(2):
        open_alert(SourceFactory.create(name=f"bot-{n}"), "Drawdown", Severity.WARNING, "")
    queries()  # the viewer's token and permissions, read once
    few = queries()
    for n in range(2, 8):
        source = SourceFactory.create(name=f"bot-{n}")
        open_alert(source, "Drawdown", Severity.WARNING, "")
        open_alert(source, "Leverage", Severity.CRITICAL, "")

    assert queries() == few
    body = viewer.get("/api/v1/health/status").json()
    assert [row["status"] for row in body["sources"]] == ["CRITICAL"] * 6 + ["DEGRADED"] * 2


def test_it_judges_tradewatchs_own_source_by_its_alerts_and_never_by_its_watchdog(
    viewer: APIClient, boss: User
) -> None:
    own = system_source()
    open_alert(own, "Tradewatch watchdog", Severity.INFO, "Tradewatch is alive")

    body = viewer.get("/api/v1/health/status").json()
    assert body["tradewatch"]["status"] == "HEALTHY"
    assert (body["tradewatch"]["issues"], body["tradewatch"]["warnings"]) == ([], [])
    assert body["status"] == Status.UNKNOWN.label  # nothing else is known, no problem found

    open_alert(own, "Tradewatch workers absent", Severity.CRITICAL, "0 workers consume this queue")

    body = viewer.get("/api/v1/health/status").json()
    assert body["status"] == "CRITICAL"
    assert body["tradewatch"]["issues"] == [
        "CRITICAL alert firing: Tradewatch workers absent \u2014 0 workers consume this queue"
    ]
    admin = Client()
    admin.force_login(boss)
    system = admin.get("/admin/").context["dashboard"]["system"]
    assert (system["status"], system["tradewatch_issues"]) == (
        "critical",
        body["tradewatch"]["issues"],
    )


def beat_and_decide(source: Source) -> None:
    """A source whose signals alone score 100: it beats and decides."""
    now = timezone.now()
    heartbeat_record(source=source, heartbeat=HeartbeatIn("ok", {}, now))
    event_ingest(source=source, events=[EventIn("decision", "", {}, now)])


def open_alert(
    source: Source, rule_name: str, severity: int, message: str, state: str = "firing"
) -> Alert:
    """An open alert of the rule named so (the packs' rules exist from migrate)."""
    return make_alert(
        Rule.objects.get(name=rule_name), source, fingerprint=f"{source.pk}-{rule_name}",
        state=state, severity=severity, message=message,
    )  # fmt: skip
