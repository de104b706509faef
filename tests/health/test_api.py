"""The operator health API: status rollup with source scores, and the safety view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from health.models import HealthCheck
from metrics.ingest import event_ingest, heartbeat_record
from metrics.services import system_source
from metrics.validation import EventIn, HeartbeatIn
from tests.alerts.conftest import record
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(django_user_model: type[User]) -> APIClient:
    user = django_user_model.objects.create_user("viewer", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_healthcheck"))
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


def test_it_refuses_a_sources_api_key(source_client: APIClient) -> None:
    assert source_client.get("/api/v1/health/status").status_code in (401, 403)


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
    assert risky["issues"] == ["positions at 90 % of the limit of 10", "exchange connection lost"]
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
