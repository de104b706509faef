"""Fixtures for the metrics tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from alerts.evaluation import forget_rules_cache
from metrics.authentication import forget_known_keys
from tests.processes import free_port


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
def reader(admin_user: User) -> APIClient:
    """An API client signed in as a superuser: it may read everything."""
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def cache_away(settings: Settings) -> None:
    """The default cache on a loopback port nothing listens on: every call is refused."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "KEY_PREFIX": "tradewatch",
        }
    }
    forget_rules_cache()  # what it read with the cache there is not trusted now
