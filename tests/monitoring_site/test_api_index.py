"""`GET /api/v1/` is the API's index: open to anyone, and true to the schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

# How the OpenAPI schema names the credentials the index calls `source_api_key` and
# `operator`; operations without `security` take a key in the path or nothing.
SCHEME_AUTH = {
    frozenset({"SourceApiKey"}): "source_api_key",
    frozenset({"tokenAuth", "cookieAuth"}): "operator",
}


def index_endpoints(index: dict[str, Any]) -> list[dict[str, Any]]:
    return [endpoint for group in index["groups"] for endpoint in group["endpoints"]]


def schema_operations(client: Client) -> set[tuple[str, str, str]]:
    """(method, path, auth) of every operation in the live schema."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = set()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            schemes = frozenset(name for item in operation.get("security", []) for name in item)
            keyless = "hook_key" if "{token}" in path else "none"
            auth = SCHEME_AUTH[schemes] if schemes else keyless
            operations.add((method.upper(), path, auth))
    return operations


def test_it_answers_anyone_with_the_endpoint_groups_and_the_schema_links(client: Client) -> None:
    response = client.get("/api/v1/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    index = response.json()
    assert [group["name"] for group in index["groups"]] == [
        "ingestion", "operator", "chat", "health", "configuration", "schema/docs", "probes",
    ]  # fmt: skip
    assert index["schema"] == "/api/schema/"
    assert index["docs"] == "/api/docs/"
    for endpoint in index_endpoints(index):
        assert endpoint["auth"] in index["auth"], endpoint
        assert endpoint["methods"], endpoint
        assert endpoint["purpose"], endpoint


@pytest.mark.parametrize(
    "authorization", ["Token not-a-token", "Api-Key AbCd1234.revoked", "Basic bm8tb25lOm5vbmU="]
)
def test_it_answers_whatever_credentials_come_with_the_request(
    client: Client, authorization: str
) -> None:
    response = client.get("/api/v1/", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 200
    assert response.json()["schema"] == "/api/schema/"


def test_it_lists_every_operation_of_the_schema_with_the_credentials_it_takes(
    client: Client,
) -> None:
    index = client.get("/api/v1/").json()
    listed = {
        (method, endpoint["url"], endpoint["auth"])
        for endpoint in index_endpoints(index)
        if endpoint["url"].startswith("/api/v1/")
        for method in endpoint["methods"]
    }

    # Equal both ways: an endpoint added to the API must be added to the index too,
    # and the index itself is an operation of the schema.
    assert listed == schema_operations(client)
    assert ("GET", "/api/v1/", "none") in listed


def test_every_endpoint_it_lists_outside_the_versioned_api_answers_a_get(client: Client) -> None:
    index = client.get("/api/v1/").json()
    others = [e for e in index_endpoints(index) if not e["url"].startswith("/api/v1/")]

    assert {e["url"] for e in others} == {
        "/api/schema/", "/api/docs/", "/api/schema/config.json", "/healthz", "/readyz",
        "/metrics",
    }  # fmt: skip
    for endpoint in others:
        assert endpoint["methods"] == ["GET"]
        assert endpoint["auth"] == "none"
        assert client.get(endpoint["url"]).status_code == 200, endpoint["url"]
