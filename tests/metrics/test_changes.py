"""What ingestion announces once a batch is stored, to the handlers settings name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from metrics.changes import SourceChange, source_change_handlers
from metrics.models import Source

pytestmark = pytest.mark.django_db

heard: list[SourceChange] = []


def record(change: SourceChange) -> None:
    heard.append(change)


def fail(change: SourceChange) -> None:
    raise RuntimeError("a handler that breaks")


@pytest.fixture
def handlers(settings: Settings) -> list[SourceChange]:
    settings.TRADEWATCH_SOURCE_CHANGED_HANDLERS = [
        "tests.metrics.test_changes.fail",
        "tests.metrics.test_changes.record",
    ]
    heard.clear()
    return heard


def post(client: APIClient, path: str, body: dict[str, Any], capture: Any) -> None:
    before = len(heard)
    with capture(execute=True):
        response = client.post(path, json.dumps(body), content_type="application/json")
        assert len(heard) == before  # nothing before the commit
    assert response.status_code == 202, response.content


def test_tradewatch_hands_every_change_to_the_alerts_trigger() -> None:
    from alerts.trigger import source_changed

    assert source_change_handlers() == [source_changed]


def test_it_announces_each_batch_once_committed_with_what_it_held(
    source_client: APIClient,
    source: Source,
    handlers: list[SourceChange],
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture = django_capture_on_commit_callbacks
    samples = [{"name": "latency_ms", "value": 3}, {"name": "fills", "value": 1}]
    post(source_client, "/api/v1/metrics", {"samples": samples}, capture)
    post(source_client, "/api/v1/metrics", {"samples": [{"name": "equity", "value": 9}]}, capture)
    trade = {"id": "t-1", "symbol": "BTC/USDT", "side": "buy", "quantity": 1, "price": 1}
    post(source_client, "/api/v1/trades", {"trades": [trade]}, capture)
    post(source_client, "/api/v1/trades", {"trades": [trade]}, capture)  # a duplicate
    post(source_client, "/api/v1/events", {"events": [{"type": "kill_switch_activated"}]}, capture)
    post(source_client, "/api/v1/heartbeat", {"status": "ok"}, capture)

    pk = source.pk
    assert handlers == [
        SourceChange(pk, names=frozenset({"latency_ms", "fills"}), derive=False),
        SourceChange(pk, names=frozenset({"equity"}), derive=True),
        SourceChange(pk, names=None, derive=True),
        SourceChange(pk, names=None, derive=False),  # nothing new to derive from
        SourceChange(pk, names=None, derive=False),
        SourceChange(pk, names=None, derive=False),
    ]
    # The handler before it failed each time: logged, and neither the answer nor the
    # next handler suffered.
    assert caplog.text.count(f"handling a change of source {pk} failed") == 6
