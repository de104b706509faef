"""What the ingestion API queued for workers: the evaluations in the broker's queue."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from rest_framework.test import APIClient


def queued_evaluations(broker: redis.Redis) -> list[tuple[int, Any]]:
    """(source id, countdown eta or None) of each evaluation waiting in the ingest queue."""
    messages = [json.loads(message) for message in broker.lrange("ingest", 0, -1)]
    assert all(m["headers"]["task"] == "alerts.tasks.evaluate_source" for m in messages)
    return [(json.loads(base64.b64decode(m["body"]))[0][0], m["headers"]["eta"]) for m in messages]


def queued_sources(broker: redis.Redis) -> list[int]:
    """Source ids of the evaluations waiting in the ingest queue."""
    return [source_id for source_id, _ in queued_evaluations(broker)]


def post_samples(client: APIClient, *samples: dict[str, Any], capture: Any) -> None:
    """POST a metric batch and run what its commit queued (`capture`: the pytest-django
    fixture `django_capture_on_commit_callbacks`)."""
    with capture(execute=True):
        response = client.post(
            "/api/v1/metrics",
            json.dumps({"samples": list(samples)}),
            content_type="application/json",
        )
    assert response.status_code == 202, response.content
