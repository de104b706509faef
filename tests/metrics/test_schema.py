"""The OpenAPI schema documents the contract, and its docs page needs no outside host."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from django.test import Client

from tests.processes import BASE_DIR


@pytest.mark.django_db
def test_it_serves_an_openapi_schema_with_every_ingestion_endpoint(client: Client) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in ("/api/v1/metrics", "/api/v1/trades", "/api/v1/heartbeat", "/api/v1/events"):
        assert "post" in paths[path], path
        assert set(paths[path]["post"]["responses"]) >= {"202", "400", "401", "413", "415", "429"}
    assert "/api/v1/hooks/metrics/{token}/" in paths
    assert schema["components"]["securitySchemes"]["SourceApiKey"]["in"] == "header"


@pytest.mark.django_db
def test_it_serves_the_docs_page_from_its_own_static_files(client: Client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert not re.search(r"""(src|href)=["']https?://""", page), "a CDN reference"
    bundle = re.search(r"""src=["']([^"']*swagger-ui-bundle\.js)""", page)
    assert bundle
    assert client.get(bundle.group(1)).status_code == 200


def test_it_validates_the_schema_without_warnings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
         "--file", "/dev/null"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
