"""The configuration API answers as its live schema says: schemathesis on a running server.

The same run as `tests/metrics/test_schema_conformance.py`, bounded to the operations
under `/api/v1/config/` (which that test leaves to this one), plus
hand-made requests with real files, so the answers that do work are checked as well.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.configuration.conftest import DESK_FILE
from tests.metrics.test_schema_conformance import LiveApi, answer_conforms, fuzz, live_api

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

__all__ = ["live_api"]  # the fixture, shared


def test_it_answers_every_configuration_operation_as_its_live_schema_says(
    live_api: LiveApi,
) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.base}/api/schema/", timeout=30)
    schema.config.update(base_url=live_api.base)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if isinstance(result, Ok) and result.ok().path.startswith("/api/v1/config/")
    ]
    failures: list[str] = []

    assert len(operations) >= 2
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz(operation, live_api, mode)

    assert not failures, "\n\n".join(failures[:20]) + f"\n\n({len(failures)} failures)"


def test_it_answers_real_files_as_its_live_schema_says(live_api: LiveApi) -> None:
    token = {"Authorization": f"Token {live_api.token}"}
    rules_only = "version: 1\nrules:\n- name: Equity floor\n  metric: equity\n"
    # The server's environment has none of the desk's secrets: refused, naming them.
    desk = DESK_FILE.read_text()

    def apply(text: str, **options: bool) -> int:
        body = {"file": text, **options}
        return answer_conforms(live_api, "POST", "/api/v1/config/apply", headers=token, json=body)

    assert apply(rules_only, dry_run=True) == 200
    assert apply(rules_only) == 200
    assert apply(desk, dry_run=True) == 400
    assert apply("version: 2\n") == 400
    assert apply("rules: [[[[") == 400
    assert answer_conforms(live_api, "GET", "/api/v1/config/export", headers=token) == 200
    assert answer_conforms(live_api, "GET", "/api/v1/config/export") == 401
