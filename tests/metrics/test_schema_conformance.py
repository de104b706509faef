"""The live OpenAPI schema is true: schemathesis fuzzes every operation of a running server.

A real web process (as `make run` starts it) serves the schema; schemathesis
loads it from there and sends each operation valid and invalid requests, with a source
API key and an operator's token, and checks every answer against the schema: never a
5xx, only declared statuses, content types, bodies and headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alerts.models import Alert, Rule, Silence
from metrics.services import source_create
from tests.processes import free_port, process_environment, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Per operation and generation mode: ~21 operations x 2 modes x this many requests, plus
# the seeded ids, keeps the run near a minute on two cores.
MAX_EXAMPLES = 20
MAX_BODY_BYTES = 64 * 1024


@dataclass
class LiveApi:
    base: str
    api_key: str
    token: str
    ids: dict[str, int | str]
    source_id: int


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveApi]:
    """A web process with a source and its key, an operator's token, an alert, a silence."""
    source, key = source_create(name="fuzzed-bot")
    operator = User.objects.create_superuser("fuzz-operator")
    token = Token.objects.create(user=operator).key
    rule = Rule.objects.create(name="fuzzed drawdown", metric="drawdown_pct")
    now = datetime.now(UTC)
    alert = Alert.objects.create(
        rule=rule, source=source, fingerprint="fuzzed", labels={}, value=12.5, peak_value=14.0,
        threshold_value=10.0, comparison=">", message="drawdown 12.5 > 10", count=1,
        first_seen=now, fired_at=now, last_seen=now, state=Alert.State.FIRING, severity=30,
    )  # fmt: skip
    silence = Silence.objects.create(
        reason="maintenance", starts_at=now, ends_at=now + timedelta(hours=1), created_by=operator
    )
    port = free_port()
    env = process_environment(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus-multiproc"),
        TRADEWATCH_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
    )
    with web_server(env, port):
        yield LiveApi(
            base=f"http://127.0.0.1:{port}",
            api_key=key,
            token=token,
            # The snapshot's `{source}` is an id or a name: fuzzed with the name, the id
            # is checked by hand below.
            ids={
                "alert_id": alert.pk,
                "silence_id": silence.pk,
                "source": source.name,
                "rule_id": rule.pk,
            },
            source_id=source.pk,
        )


def credentials(operation: Any, live: LiveApi) -> dict[str, str]:
    """The Authorization header the operation's security scheme asks for."""
    schemes = {name for item in operation.definition.raw.get("security", []) for name in item}
    if "SourceApiKey" in schemes:
        return {"Authorization": f"Api-Key {live.api_key}"}
    if "tokenAuth" in schemes:
        return {"Authorization": f"Token {live.token}"}
    return {}


def fuzz(operation: Any, live: LiveApi, mode: GenerationMode, **fixed: Any) -> list[str]:
    """Run schemathesis on one operation; the failures it found, as text."""
    headers = credentials(operation, live)
    failures: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def check(case: Any) -> None:
        try:
            case.call_and_validate(base_url=live.base, headers=headers, checks=CHECKS, timeout=30)
        except (AssertionError, FailureGroup) as exc:  # kept, so one run reports them all
            failures.append(f"{operation.label} [{mode}]: {exc}")

    try:
        check()
    except Unsatisfiable:
        # An operation without parameters or body (`GET /api/v1/health/status`) has no
        # invalid request to make; a valid one it must always have.
        assert mode == GenerationMode.NEGATIVE, f"{operation.label}: no request generated"
    return failures


def test_it_answers_every_operation_as_its_live_schema_says(live_api: LiveApi) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.base}/api/schema/", timeout=30)
    schema.config.update(base_url=live_api.base)
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the schema can be loaded
        # The configuration API has a run of its own (tests/configuration/), with files;
        # the event stream's 200 never ends (no fuzzer reads it whole): its answers are
        # checked by hand below.
        path = result.ok().path
        if not path.startswith("/api/v1/config/") and path != "/api/v1/stream":
            operations.append(result.ok())
    assert len(operations) >= 21
    for operation in operations:
        path_ids = {
            name: value for name, value in live_api.ids.items() if f"{{{name}}}" in operation.path
        }
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz(operation, live_api, mode)
        if path_ids:  # and the objects that exist, so their operations do their work
            failures += fuzz(operation, live_api, GenerationMode.POSITIVE, path_parameters=path_ids)
        if "{token}" in operation.path:
            token = {"token": live_api.api_key}
            failures += fuzz(operation, live_api, GenerationMode.POSITIVE, path_parameters=token)

    assert not failures, "\n\n".join(failures[:20]) + f"\n\n({len(failures)} failures)"


def answer_conforms(
    live: LiveApi, method: str, path: str, url: str | None = None, **request: Any
) -> int:
    """Send one hand-made request to `url` (default: `path`), check the answer against
    the live schema's operation `method path`, and return its status."""
    schema = schemathesis.openapi.from_url(f"{live.base}/api/schema/", timeout=30)
    operation = schema[path][method]
    response = httpx.request(method, f"{live.base}{url or path}", timeout=30, **request)
    operation.Case().validate_response(response, checks=CHECKS)
    return response.status_code


def test_it_declares_what_a_missing_key_or_token_and_oversized_requests_get(
    live_api: LiveApi,
) -> None:
    token = {"Authorization": f"Token {live_api.token}"}
    key = {"Authorization": f"Api-Key {live_api.api_key}", "Content-Type": "application/json"}
    long_filter = {"rule": "r" * 3000}  # past Tradewatch's URL limit
    longer_filter = {"rule": "r" * 20_000}  # still the API's own JSON answer

    assert answer_conforms(live_api, "GET", "/api/v1/whoami") == 401
    assert answer_conforms(live_api, "GET", "/api/v1/alerts") == 401
    # A source's key on an operator endpoint: 401 saying what the endpoint takes.
    only_key = {"Authorization": f"Api-Key {live_api.api_key}"}
    assert answer_conforms(live_api, "GET", "/api/v1/alerts", headers=only_key) == 401
    assert answer_conforms(live_api, "GET", "/api/v1/alerts", headers=token) == 200
    assert (
        answer_conforms(live_api, "GET", "/api/v1/alerts", headers=token, params=long_filter) == 414
    )
    assert (
        answer_conforms(live_api, "GET", "/api/v1/alerts", headers=token, params=longer_filter)
        == 414
    )
    big = b'{"samples": [' + b'{"name": "x", "value": 1},' * 3000 + b'{"name": "x", "value": 1}]}'
    assert answer_conforms(live_api, "POST", "/api/v1/metrics", headers=key, content=big) == 413
    assert (
        answer_conforms(live_api, "POST", "/api/v1/alerts/test", headers=token, content=big) == 413
    )
    assert (
        answer_conforms(
            live_api, "GET", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/-1", headers=token
        )
        == 404
    )
    snapshot = "/api/v1/sources/{source}/snapshot"
    for ref in (live_api.source_id, "fuzzed-bot"):
        url = f"/api/v1/sources/{ref}/snapshot"
        assert answer_conforms(live_api, "GET", snapshot, url, headers=token) == 200
    ghost = "/api/v1/sources/ghost/snapshot"
    assert answer_conforms(live_api, "GET", snapshot, ghost, headers=token) == 404


def test_the_event_streams_answers_are_those_its_schema_declares(live_api: LiveApi) -> None:
    """The stream is left out of the fuzzing (its 200 never ends): each of its answers,
    the stream's own headers included, checked against the schema by hand."""
    token = {"Authorization": f"Token {live_api.token}"}
    key = {"Authorization": f"Api-Key {live_api.api_key}"}
    assert answer_conforms(live_api, "GET", "/api/v1/stream") == 401
    assert answer_conforms(live_api, "GET", "/api/v1/stream", headers=key) == 401
    bad = {"metrics": "not a name!"}
    assert answer_conforms(live_api, "GET", "/api/v1/stream", headers=token, params=bad) == 400
    ghost = {"source": "ghost"}
    assert answer_conforms(live_api, "GET", "/api/v1/stream", headers=token, params=ghost) == 400

    schema = schemathesis.openapi.from_url(f"{live_api.base}/api/schema/", timeout=30)
    operation = schema["/api/v1/stream"]["GET"]
    url = f"{live_api.base}/api/v1/stream?metrics=equity"
    with httpx.stream("GET", url, headers=token, timeout=30) as response:
        # The status and headers only: the body goes on for as long as one reads it.
        first = next(response.iter_lines())
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        assert first.startswith("retry: ")
        declared = operation.definition.raw["responses"]["200"]
        assert list(declared["content"]) == ["text/event-stream"]
        assert declared["headers"]["X-Request-ID"]["required"] is True
