"""Fixtures shared by every test."""

from __future__ import annotations

import pytest
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
