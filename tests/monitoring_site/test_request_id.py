"""Structured logs: one request id from the API call to the delivery, across processes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from alerts.channels.signing import signing_secret_new
from alerts.models import Channel, Policy, Severity
from metrics.services import source_create
from monitoring_site.logcontext import (
    ContextFilter,
    request_id_from,
    request_id_var,
)
from tests.processes import broker_purge, celery_worker, process_environment, wait_until
from tests.receivers import receiver


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log records in a process's output (other lines, e.g. a banner, skipped)."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def test_it_keeps_a_sensible_caller_id_and_replaces_anything_else() -> None:
    assert request_id_from("req-42.a:b_c") == "req-42.a:b_c"
    for bad in (None, "", "a b", "x" * 101, "evil\nline"):
        made = request_id_from(bad)
        assert len(made) == 32
        assert made != bad


def test_it_adds_the_ids_to_every_log_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = request_id_var.set("req-1")
    try:
        ContextFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert (record.request_id, record.task_id, record.task_name) == ("req-1", None, None)  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_it_answers_with_the_request_id(api_client: APIClient) -> None:
    given = api_client.get("/healthz", HTTP_X_REQUEST_ID="probe-7")
    made = api_client.get("/healthz")

    assert given["X-Request-ID"] == "probe-7"
    assert len(made["X-Request-ID"]) == 32


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("on_arrival", [True, False], ids=["evaluated-on-arrival", "by-worker"])
def test_it_carries_the_request_id_of_an_ingest_call_to_the_delivery_log_line(
    tmp_path: Path, settings: Any, on_arrival: bool
) -> None:
    # Evaluated by a worker (as the rest of a burst is), the id crosses two task hops:
    # evaluation, then delivery; evaluated on arrival, one.
    settings.TRADEWATCH_EVALUATE_ON_ARRIVAL = on_arrival
    broker_purge()
    _, key = source_create(name="request-id-bot")
    log = tmp_path / "worker.log"
    with receiver() as hook:
        channel = Channel(
            name="hook", kind=Channel.Kind.WEBHOOK, config={"url": f"{hook.url}/a"}, rate_limit=0
        )
        channel.secrets = {"signing_secret": signing_secret_new()}
        channel.full_clean()
        channel.save()
        Policy.objects.create(name="all", min_severity=Severity.WARNING).channels.set([channel])
        env = process_environment(
            LOG_FORMAT="json", TRADEWATCH_DELIVERY_ALLOWED_NETWORKS="127.0.0.0/8"
        )
        with celery_worker(env, queues="ingest,delivery", log_path=log):
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
            response = client.post(
                "/api/v1/metrics",
                json.dumps({"samples": [{"name": "leverage", "value": 4.5}]}),
                content_type="application/json",
                HTTP_X_REQUEST_ID="trace-ingest-0042",
            )
            assert response.status_code == 202
            assert response["X-Request-ID"] == "trace-ingest-0042"

            def delivered() -> bool:
                return any(
                    r.get("message", "").startswith("delivery notification=")
                    for r in json_lines(log)
                )

            assert wait_until(delivered, 60), log.read_text()[-3000:]
    broker_purge()

    records = json_lines(log)
    [delivery] = [r for r in records if r["message"].startswith("delivery notification=")]
    assert delivery["request_id"] == "trace-ingest-0042"
    assert delivery["task_name"] == "alerts.tasks.deliver"
    assert delivery["task_id"]
    assert delivery["logger"] == "alerts.delivery"
    assert "ok=True" in delivery["message"]
    evaluation = [
        r for r in records
        if r.get("task_name") == "alerts.tasks.evaluate_source"
        and r.get("request_id") == "trace-ingest-0042"
    ]  # fmt: skip
    if on_arrival:
        assert evaluation == []  # the request itself evaluated
    else:
        # The evaluation that raised the alert ran under the same id, in another task.
        assert evaluation, records
        assert {evaluation[0]["task_id"]} != {delivery["task_id"]}
