"""Generated bodies against every ingestion endpoint: never a 5xx, always a clear 4xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

ENDPOINTS = ["/api/v1/metrics", "/api/v1/trades", "/api/v1/events", "/api/v1/heartbeat"]
FIELDS = [
    "name", "value", "ts", "labels", "id", "symbol", "side", "quantity", "price", "pnl", "fee",
    "type", "message", "context", "status", "info", "samples", "trades", "events",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["buy", "sell", "ok", "2026-11-23T10:00:00Z", "artifact_updated", "x" * 300])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=12,
)
items = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
bodies = (
    json_values
    | st.fixed_dictionaries(
        {}, optional={key: st.lists(items, max_size=5) for key in ("samples", "trades", "events")}
    )
    | st.dictionaries(st.sampled_from(["status", "info", "ts"]), json_values, max_size=3)
)


def encode(body: Any) -> bytes:
    # json.dumps writes NaN and Infinity as bare words: malformed JSON worth sending too.
    return json.dumps(body, allow_nan=True).encode()


def assert_clear_answer(response: Any) -> None:
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        errors = response.json()["errors"]
        assert errors
        assert all(error["message"] for error in errors)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_it_never_answers_5xx_to_generated_json(
    source_client: APIClient, endpoint: str, body: Any
) -> None:
    response = source_client.post(endpoint, encode(body), content_type="application/json")

    assert_clear_answer(response)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.binary(max_size=200), content_type=st.sampled_from(
    ["application/json", "application/json; charset=latin-1", "text/plain", ""]
))  # fmt: skip
def test_it_never_answers_5xx_to_arbitrary_bytes(
    source_client: APIClient, endpoint: str, raw: bytes, content_type: str
) -> None:
    response = source_client.generic(
        "POST", endpoint, raw,  # type: ignore[arg-type]  # bytes are what is sent
        content_type=content_type,
    )  # fmt: skip

    assert_clear_answer(response)
