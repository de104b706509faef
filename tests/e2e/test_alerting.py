"""From the API to an alert row, through real Celery workers."""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from celery import current_app
from rest_framework.test import APIClient

from alerts.models import Alert, AlertTransition
from metrics.models import Source
from metrics.services import source_create
from tests.processes import celery_worker, process_environment, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def post(client: APIClient, path: str, body: object) -> None:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content


def test_it_turns_posted_metrics_into_an_alert_and_equity_into_a_drawdown_alert() -> None:
    source, key = source_create(name="e2e-bot")
    client = client_for(key)
    current_app.control.purge()
    with celery_worker(process_environment(), queues="ingest"):
        post(client, "/api/v1/metrics", {"samples": [{"name": "leverage", "value": 4.5}]})
        assert wait_until(lambda: Alert.objects.filter(rule__name="Leverage").exists(), 60)

        # Equity falls 25 % from its peak: derived drawdown -> the pack's EMERGENCY.
        post(client, "/api/v1/metrics", {"samples": [{"name": "equity", "value": 1000}]})
        post(client, "/api/v1/metrics", {"samples": [{"name": "equity", "value": 750}]})
        assert wait_until(
            lambda: Alert.objects.filter(rule__name="Drawdown", severity=60).exists(), 60
        )

    leverage = Alert.objects.get(rule__name="Leverage")
    assert (leverage.source, leverage.severity, leverage.value) == (source, 50, 4.5)
    assert AlertTransition.objects.filter(alert=leverage, kind="firing", notify=True).exists()


def test_it_keeps_one_alert_when_two_workers_evaluate_the_same_source_at_once() -> None:
    source, key = source_create(name="raced-bot")
    post(client_for(key), "/api/v1/metrics", {"samples": [{"name": "leverage", "value": 5}]})
    current_app.control.purge()
    env = process_environment()
    with (
        celery_worker(env, queues="ingest", name="first"),
        celery_worker(env, queues="ingest", name="second"),
    ):
        # Straight to the task, past the coalescing: 40 evaluations racing on 4 processes.
        results = [
            current_app.send_task("alerts.tasks.evaluate_source", args=[source.pk])
            for _ in range(40)
        ]
        assert len(results) == 40
        # Each evaluation either opened the alert or counted one more finding in it.
        assert wait_until(lambda: _count(source) >= 40, 90)

    assert Alert.objects.filter(source=source, rule__name="Leverage").count() == 1


def _count(source: Source) -> int:
    alert = Alert.objects.filter(source=source, rule__name="Leverage").first()
    return alert.count if alert else 0


def test_it_evaluates_a_burst_of_100_batches_one_evaluation_at_a_time(tmp_path: Path) -> None:
    source, key = source_create(name="bursty-bot")
    client = client_for(key)
    current_app.control.purge()
    log = tmp_path / "worker.log"
    with celery_worker(process_environment(), queues="ingest", log_path=log):
        assert wait_until(lambda: " ready." in log.read_text(), 60)
        for i in range(100):
            # Calm all along, until the last batch.
            value = 5.0 if i == 99 else 1 + i / 100
            post(client, "/api/v1/metrics", {"samples": [{"name": "leverage", "value": value}]})
        assert wait_until(lambda: _evaluations(log) == (1, 1) or _settled(log), 60)

    received, succeeded = _evaluations(log)
    assert received == succeeded
    # Merged: batches that came while one evaluation was in flight shared the next one.
    assert 1 <= succeeded <= 50, log.read_text()
    # Never two evaluations of the source at once, though the worker runs two processes:
    # each one was queued only after the one before it had ended.
    spans = sorted(_evaluation_spans(log))
    for (_, ended), (started, _) in itertools.pairwise(spans):
        # The log's clock has millisecond steps; two evaluations at once would overlap
        # by a whole evaluation (tens of milliseconds).
        assert started >= ended - 0.002, spans
    # And the last batch was judged: a breach waits for one evaluation at most.
    alert = Alert.objects.get(source=source, rule__name="Leverage")
    assert (alert.state, alert.value) == (Alert.State.FIRING, 5.0)


def _evaluations(log: Path) -> tuple[int, int]:
    lines = [
        line for line in log.read_text().splitlines() if "alerts.tasks.evaluate_source[" in line
    ]
    return (
        sum(" received" in line for line in lines),
        sum(" succeeded in " in line for line in lines),
    )


_SUCCEEDED = re.compile(
    r"^(\S+ \S+) INFO .*alerts\.tasks\.evaluate_source\[.*\] succeeded in ([0-9.e-]+)s"
)


def _evaluation_spans(log: Path) -> list[tuple[float, float]]:
    """(start, end) of each evaluation the worker ran, in seconds."""
    spans = []
    for line in log.read_text().splitlines():
        if match := _SUCCEEDED.match(line):
            stamp, seconds = match.groups()
            ended = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            spans.append((ended - float(seconds), ended))
    return spans


def _settled(log: Path) -> bool:
    """Every evaluation received has finished, and no new one came for a second."""
    before = _evaluations(log)
    time.sleep(1)
    return before == _evaluations(log) and before[0] == before[1] and before[1] >= 1
