"""What a trading system is told of its trading state: every ingestion answer, and
`GET /api/v1/control` with its ETag."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from metrics.control import control_set
from metrics.models import Source, TradingControl

pytestmark = pytest.mark.django_db

State = TradingControl.State
Scope = TradingControl.Scope


def halt(source: Source) -> None:
    control_set(scope=Scope.SOURCE, source=source, state=State.HALTED, reason="drawdown 21 %")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/metrics", {"samples": [{"name": "equity", "value": 1.0}]}),
        ("/api/v1/trades", {"trades": [{"id": "t", "symbol": "X", "side": "buy",
                                        "quantity": 1, "price": 1}]}),
        ("/api/v1/heartbeat", {}),
        ("/api/v1/events", {"events": [{"type": "error"}]}),
    ],
)  # fmt: skip
def test_every_ingestion_answer_carries_the_state(
    source: Source, source_client: APIClient, path: str, body: dict[str, object]
) -> None:
    answer = source_client.post(path, body, format="json")
    assert answer.status_code == 202
    assert answer["Tradewatch-Trading-State"] == "active"
    assert answer.json()["trading_state"] == "active"
    halt(source)
    answer = source_client.post(path, body, format="json")
    assert answer["Tradewatch-Trading-State"] == "halted"
    assert answer.json()["trading_state"] == "halted"


def test_a_replayed_answer_carries_the_state_of_now(
    source: Source, source_client: APIClient
) -> None:
    body = {"samples": [{"name": "equity", "value": 1.0}]}
    first = source_client.post("/api/v1/metrics", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.json()["trading_state"] == "active"
    halt(source)
    again = source_client.post("/api/v1/metrics", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["trading_state"] == "halted"


def test_it_answers_the_state_with_an_etag_and_304_when_unchanged(
    source: Source, source_client: APIClient
) -> None:
    answer = source_client.get("/api/v1/control")
    assert answer.status_code == 200
    assert answer.json()["state"] == "active"
    assert answer.json()["may_open_positions"] is True
    etag = answer["ETag"]
    unchanged = source_client.get("/api/v1/control", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == etag
    halt(source)
    changed = source_client.get("/api/v1/control?wait=30", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    body = changed.json()
    assert (body["state"], body["scope"], body["reason"]) == ("halted", "source", "drawdown 21 %")
    assert body["may_open_positions"] is False


def test_without_the_front_a_wait_is_answered_at_once(
    source: Source, source_client: APIClient
) -> None:
    etag = source_client.get("/api/v1/control")["ETag"]
    answer = source_client.get("/api/v1/control?wait=30", HTTP_IF_NONE_MATCH=etag)
    assert answer.status_code == 304
    assert "X-Tradewatch-Hold" not in answer
    held = source_client.get(
        "/api/v1/control?wait=30", HTTP_IF_NONE_MATCH=etag, HTTP_X_TRADEWATCH_FRONT_HOLDS="1"
    )
    assert held["X-Tradewatch-Hold"] == "30"


def test_it_refuses_a_wait_out_of_range(source_client: APIClient) -> None:
    answer = source_client.get("/api/v1/control?wait=61")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "wait"


def test_it_takes_no_person(api_client: APIClient) -> None:
    assert api_client.get("/api/v1/control").status_code == 401
