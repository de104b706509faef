"""A stored batch does not outlive its request waiting for the garbage collector."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.models import MetricSample

pytestmark = pytest.mark.django_db

SAMPLES = 500


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _batch(offset: int) -> str:
    start = timezone.now() - timedelta(seconds=10)
    return json.dumps(
        {
            "samples": [
                {
                    "name": "latency_ms",
                    "value": i,
                    "labels": {"endpoint": f"e{i % 5}"},
                    "ts": (start + timedelta(milliseconds=offset + i)).isoformat(),
                }
                for i in range(SAMPLES)
            ]
        }
    )


def test_a_batch_is_freed_when_its_request_ends(
    source_client: APIClient, collector_off: None
) -> None:
    def post(body: str) -> Any:
        return source_client.post("/api/v1/metrics", body, content_type="application/json")

    # The first batch creates the series and fills the per-process caches.
    assert post(_batch(0)).status_code == 202
    before = len(gc.get_objects())

    response = post(_batch(SAMPLES))

    assert response.status_code == 202
    assert MetricSample.objects.count() == 2 * SAMPLES
    # Left behind: the request's own objects (Django's request, DRF's, the response:
    # about a hundred, in cycles). Kept on the request, the batch's dicts would be left
    # too (about 600 here), and every collection would walk them.
    left = len(gc.get_objects()) - before
    assert left < SAMPLES // 2, left
