"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from metrics.models import Source
from tests.factories import SourceFactory


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def source(db: None) -> Source:
    return SourceFactory.create(name="alpha-bot")


@pytest.fixture
def source_key(source: Source) -> str:
    _, key = source.issue_api_key(name="test")
    return key


@pytest.fixture
def source_client(source_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {source_key}")
    return client


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The broker, its ingest queue (where evaluations wait for workers) emptied."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("ingest")
    yield client
    client.delete("ingest")


@pytest.fixture(autouse=True)
def _fresh_cache_and_series_ids() -> Iterator[None]:
    """Each test starts with an empty cache (rate limits, flags) and no remembered series."""
    from django.core.cache import cache

    from alerts.routing import forget_routing_cache
    from alerts.trigger import forget_arrival_budget
    from metrics.control import forget_controls
    from metrics.ingest import forget_series_cache
    from metrics.schedules import forget_schedules

    cache.clear()
    forget_series_cache()
    forget_schedules()
    forget_routing_cache()
    forget_arrival_budget()
    forget_controls()
    yield
    forget_series_cache()
