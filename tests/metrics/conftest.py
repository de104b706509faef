"""Fixtures for the metrics tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from alerts.evaluation import forget_rules_cache
from metrics.authentication import forget_known_keys


@pytest.fixture(autouse=True)
def _nothing_remembered() -> Iterator[None]:
    """Each test checks its keys against the database afresh (revoked, disabled, expired)
    and reads the rules (which metrics they watch) afresh."""
    forget_known_keys()
    forget_rules_cache()
    yield
    forget_known_keys()
    forget_rules_cache()


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The broker, its ingest queue (where evaluations wait for workers) emptied."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("ingest")
    yield client
    client.delete("ingest")
