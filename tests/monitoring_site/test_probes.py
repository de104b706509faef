"""/healthz answers while the process lives; /readyz says whether its dependencies do."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.processes import free_port


def test_it_answers_healthz_without_touching_dependencies(client: Client) -> None:
    # No database access allowed here: the fixture-less test would fail if it tried.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_is_ready_when_database_and_broker_answer(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["vendor"] == "postgresql"
    assert body["checks"]["broker"] == {
        "ok": True,
        "transport": "redis",
        "latency_ms": body["checks"]["broker"]["latency_ms"],
    }


@pytest.mark.django_db
def test_it_is_unavailable_with_a_clear_body_when_the_broker_is_down(client: Client) -> None:
    closed_port = free_port()  # nothing listens there once the probe socket closed

    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port}/0"):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    broker = body["checks"]["broker"]
    assert broker["ok"] is False
    assert broker["transport"] == "redis"
    assert "Connection refused" in broker["error"] or "connect" in broker["error"].lower()


@pytest.mark.django_db
def test_it_does_not_cache_probe_answers(client: Client) -> None:
    response = client.get("/readyz")

    assert "no-cache" in response["Cache-Control"]
