"""API errors that come from outside the views: the database away, unknown URLs, limits."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alerts import selectors


@pytest.fixture
def operator_api() -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=User.objects.create_superuser("erin"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.mark.django_db
def test_it_answers_503_with_retry_after_when_the_database_is_unavailable(
    operator_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(**filters: object) -> None:
        raise OperationalError("connection to server at 127.0.0.1 port 5432 failed")

    monkeypatch.setattr(selectors, "alert_list", refused)

    response = operator_api.get("/api/v1/alerts")

    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert response.json()["errors"][0]["message"].startswith("The database is unavailable")


@pytest.mark.django_db
def test_it_answers_json_404_for_an_unknown_api_url(operator_api: APIClient) -> None:
    for response in (operator_api.get("/api/v1/alerts/-1"), operator_api.post("/api/v1/nope")):
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["errors"][0]["field"] == "url"


@pytest.mark.django_db
def test_it_refuses_a_long_url_with_414_naming_the_limit(operator_api: APIClient) -> None:
    response = operator_api.get("/api/v1/alerts", {"rule": "r" * 3000})

    assert response.status_code == 414
    assert "at most 2048" in response.json()["errors"][0]["message"]
