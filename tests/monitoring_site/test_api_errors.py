"""API errors are JSON with a clear message, DEBUG on or off; never Django's HTML pages."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

URLCONF = "tests.monitoring_site.api_error_urls"


def error(message: str) -> dict[str, object]:
    """The API's one error shape."""
    return {"errors": [{"index": None, "field": None, "message": message}]}


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/api/v1/alerts/null", "/api/v2/alerts", "/api/nothing"])
@pytest.mark.django_db
def test_an_unknown_api_url_is_a_json_404(debug: bool, path: str) -> None:
    with override_settings(DEBUG=debug):
        response = Client().get(path, HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    [problem] = json.loads(response.content)["errors"]
    assert problem["message"].startswith(("No API endpoint", "Not found: no API endpoint"))
    assert b"URLconf" not in response.content


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.django_db
def test_a_404_raised_outside_the_versioned_api_is_json(debug: bool) -> None:
    with override_settings(DEBUG=debug):
        response = Client().get("/api/schema/nothing-here", HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert json.loads(response.content) == error(
        "Not found: no API endpoint or object at this URL."
    )


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.django_db
def test_a_failing_api_view_is_a_json_500_naming_the_request(debug: bool) -> None:
    client = Client(raise_request_exception=False)
    with override_settings(DEBUG=debug, ROOT_URLCONF=URLCONF):
        response = client.get(
            "/api/v1/test-explode/", HTTP_ACCEPT="text/html", HTTP_X_REQUEST_ID="req-42"
        )

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == error(
        "Internal server error: it was logged (request id req-42); please retry later."
    )
    assert b"a bug in a view" not in response.content
    assert response["X-Request-ID"] == "req-42"


@pytest.mark.django_db
def test_a_refused_host_on_the_api_is_a_json_400() -> None:
    response = Client().get("/api/v1/alerts", HTTP_HOST="evil.example.com")

    assert response.status_code == 400
    assert json.loads(response.content) == error("Bad Request.")


@pytest.mark.django_db
def test_the_api_s_own_json_errors_and_other_pages_are_left_alone() -> None:
    unauthenticated = Client().get("/api/v1/alerts")
    admin_404 = Client().get("/admin/no-such-page/")

    assert unauthenticated.status_code in (401, 403)
    assert "credentials" in json.loads(unauthenticated.content)["errors"][0]["message"]
    assert admin_404.status_code in (302, 404)
    assert admin_404["Content-Type"].startswith("text/html")
