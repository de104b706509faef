"""The ingestion endpoints, against PostgreSQL: what is stored, and what is refused whole."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from metrics.ingest import SMALL_BATCH_ROWS
from metrics.models import (
    Event,
    IdempotentRequest,
    MetricSample,
    MetricSeries,
    Source,
    SourceHeartbeat,
    Trade,
)

pytestmark = pytest.mark.django_db


def post(client: APIClient, path: str, body: Any, **headers: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def nothing_stored() -> bool:
    return not (
        MetricSample.objects.exists()
        or MetricSeries.objects.exists()
        or Trade.objects.exists()
        or Event.objects.exists()
        or SourceHeartbeat.objects.exists()
    )


# --- metrics ---------------------------------------------------------------------------


def test_it_stores_samples_and_their_latest_values(
    source_client: APIClient, source: Source
) -> None:
    body = {
        "samples": [
            {"name": "drawdown_pct", "value": 12.5, "ts": "2026-11-23T10:00:00Z",
             "labels": {"symbol": "BTC/USDT"}},
            {"name": "drawdown_pct", "value": 13.0, "ts": "2026-11-23T10:00:01+00:00",
             "labels": {"symbol": "BTC/USDT"}},
            {"name": "equity", "value": 1000},
        ]
    }  # fmt: skip

    with override_settings(TRADEWATCH_METRIC_RETENTION_DAYS=3650):
        response = post(source_client, "/api/v1/metrics", body)

    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "trading_state": "active"}
    drawdown = MetricSeries.objects.get(source=source, name="drawdown_pct")
    assert drawdown.labels == {"symbol": "BTC/USDT"}
    assert drawdown.labels_key == '{"symbol":"BTC/USDT"}'
    assert drawdown.last_value == 13.0
    assert drawdown.last_ts == datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)
    assert list(
        MetricSample.objects.filter(series=drawdown).order_by("ts").values_list("value", flat=True)
    ) == [12.5, 13.0]
    equity = MetricSeries.objects.get(source=source, name="equity")
    assert equity.last_value == 1000.0
    assert equity.last_ts is not None
    assert abs((timezone.now() - equity.last_ts).total_seconds()) < 60  # missing ts = now


def test_it_keeps_series_apart_by_labels(source_client: APIClient) -> None:
    post(source_client, "/api/v1/metrics", {"samples": [
        {"name": "latency_ms", "value": 1, "labels": {"exchange": "binance"}},
        {"name": "latency_ms", "value": 2, "labels": {"exchange": "kraken"}},
        {"name": "latency_ms", "value": 3},
    ]})  # fmt: skip

    assert MetricSeries.objects.filter(name="latency_ms").count() == 3


def test_it_accepts_unix_seconds(source_client: APIClient) -> None:
    ts = timezone.now().timestamp() - 30

    post(source_client, "/api/v1/metrics", {"samples": [{"name": "x", "value": 1, "ts": ts}]})

    sample = MetricSample.objects.get()
    assert abs(sample.ts.timestamp() - ts) < 1e-3


def test_it_never_moves_the_latest_value_back_in_time(source_client: APIClient) -> None:
    now = timezone.now()
    post(
        source_client,
        "/api/v1/metrics",
        {"samples": [{"name": "x", "value": 2, "ts": now.isoformat()}]},
    )
    late = (now - timedelta(seconds=10)).isoformat()

    post(source_client, "/api/v1/metrics", {"samples": [{"name": "x", "value": 1, "ts": late}]})

    series = MetricSeries.objects.get()
    assert series.last_value == 2
    assert MetricSample.objects.count() == 2


# A small batch is written by one upsert, a large one by COPY (falling back to an
# upsert on a replayed instant): both must replace, and keep the newest latest value.
@pytest.mark.parametrize("others", [0, SMALL_BATCH_ROWS + 10], ids=["small", "large"])
def test_it_replaces_a_sample_sent_again_for_the_same_instant(
    source_client: APIClient, others: int
) -> None:
    now = timezone.now()
    ts = now.isoformat()
    post(source_client, "/api/v1/metrics", {"samples": [{"name": "x", "value": 1, "ts": ts}]})
    filler = [
        {"name": "z", "value": n, "ts": (now - timedelta(seconds=n + 1)).isoformat()}
        for n in range(others)
    ]

    response = post(
        source_client,
        "/api/v1/metrics",
        {
            "samples": [
                {"name": "x", "value": 5, "ts": ts},
                {"name": "y", "value": 1, "ts": ts},
                *filler,
            ]
        },
    )

    assert response.status_code == 202
    assert MetricSample.objects.filter(series__name="x").get().value == 5
    assert MetricSeries.objects.get(name="x").last_value == 5
    assert MetricSample.objects.filter(series__name="y").count() == 1
    assert MetricSample.objects.filter(series__name="z").count() == others


def test_it_keeps_the_last_of_two_samples_at_one_instant_in_one_batch(
    source_client: APIClient,
) -> None:
    ts = timezone.now().isoformat()

    post(source_client, "/api/v1/metrics", {"samples": [
        {"name": "x", "value": 1, "ts": ts}, {"name": "x", "value": 2, "ts": ts},
    ]})  # fmt: skip

    assert MetricSample.objects.get().value == 2


def test_it_keeps_each_source_in_its_own_series(source_client: APIClient) -> None:
    other = Source.objects.create(name="other-bot")
    _, other_key = other.issue_api_key()
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {other_key}")

    post(source_client, "/api/v1/metrics", {"samples": [{"name": "x", "value": 1}]})
    post(other_client, "/api/v1/metrics", {"samples": [{"name": "x", "value": 2}]})

    assert sorted(MetricSeries.objects.values_list("source__name", "last_value")) == [
        ("alpha-bot", 1.0),
        ("other-bot", 2.0),
    ]


# --- every rejection: status, error body, nothing stored -----------------------------------

# Far enough out that the test still holds however long after import it runs.
FUTURE = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
TOO_OLD = (datetime.now(UTC) - timedelta(days=31)).isoformat()
GOOD = {"name": "x", "value": 1}


@pytest.mark.parametrize(
    ("body", "index", "field", "message"),
    [
        (
            {"samples": [GOOD, {"name": "x", "value": "12"}]},
            1,
            "value",
            "must be a number, not a string",
        ),
        (
            {"samples": [{"name": "x", "value": True}]},
            0,
            "value",
            "must be a number, not a boolean",
        ),
        ({"samples": [{"name": "x", "value": None}]}, 0, "value", "must be a number, not null"),
        ({"samples": [{"name": "x"}]}, 0, "value", "is required"),
        ({"samples": [{"value": 1}]}, 0, "name", "is required"),
        ({"samples": [{"name": "9lives", "value": 1}]}, 0, "name", "must match"),
        ({"samples": [{"name": "a b", "value": 1}]}, 0, "name", "must match"),
        ({"samples": [{"name": "x" * 201, "value": 1}]}, 0, "name", "at most 200"),
        ({"samples": [{"name": 5, "value": 1}]}, 0, "name", "must match"),
        (
            {"samples": [{**GOOD, "labels": {f"l{i}": "v" for i in range(17)}}]},
            0,
            "labels",
            "has 17 labels; at most 16",
        ),
        ({"samples": [{**GOOD, "labels": {"symbol": 1}}]}, 0, "labels.symbol", "must be a string"),
        ({"samples": [{**GOOD, "labels": {"bad-name": "v"}}]}, 0, "labels.bad-name", "label names"),
        ({"samples": [{**GOOD, "labels": ["a"]}]}, 0, "labels", "must be an object"),
        ({"samples": [{**GOOD, "ts": FUTURE}]}, 0, "ts", "more than 5 minutes in the future"),
        ({"samples": [{**GOOD, "ts": TOO_OLD}]}, 0, "ts", "older than the retention (30 days)"),
        ({"samples": [{**GOOD, "ts": "2026-11-23T10:00:00"}]}, 0, "ts", "needs a UTC offset"),
        ({"samples": [{**GOOD, "ts": "yesterday"}]}, 0, "ts", "must be ISO 8601"),
        ({"samples": [{**GOOD, "ts": 1e30}]}, 0, "ts", "out of range"),
        ({"samples": [{**GOOD, "unit": "pct"}]}, 0, "unit", "unknown field"),
        ({"samples": ["x"]}, 0, None, "each sample must be an object"),
        (
            {
                "samples": [],
            },
            None,
            "samples",
            "at least one item",
        ),
        ({"samples": {"name": "x"}}, None, "samples", "must be an array"),
        ({}, None, "samples", "is required"),
        ({"samples": [GOOD], "source": "me"}, None, "source", "unknown field"),
        ([GOOD], None, None, "must be a JSON object"),
    ],
)
def test_it_refuses_a_bad_sample_batch_naming_item_and_field(
    source_client: APIClient, body: Any, index: int | None, field: str | None, message: str
) -> None:
    response = post(source_client, "/api/v1/metrics", body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert len(errors) == 1
    assert errors[0]["index"] == index
    assert errors[0]["field"] == field
    assert message in errors[0]["message"]
    assert nothing_stored()


def test_it_reports_every_bad_item_of_a_batch(source_client: APIClient) -> None:
    body = {"samples": [GOOD, {"name": "x", "value": "a"}, GOOD, {"name": "", "value": 1}]}

    response = post(source_client, "/api/v1/metrics", body)

    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [
        (1, "value"),
        (3, "name"),
    ]
    assert nothing_stored()


@pytest.mark.parametrize(
    "raw",
    [
        '{"samples": [{"name": "x", "value": NaN}]}',
        '{"samples": [{"name": "x", "value": Infinity}]}',
        '{"samples": [{"name": "x", "value": -Infinity}]}',
        '{"samples": [{"name": "x", "value": 1e999}]}',
        '{"samples": [{"name": "x", "value": 1}',
        "not json",
        '{"samples": [{"name": "x", "value": 1,}]}',
    ],
)
def test_it_refuses_malformed_json_and_non_finite_numbers(
    source_client: APIClient, raw: str
) -> None:
    response = source_client.post("/api/v1/metrics", raw, content_type="application/json")

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert "JSON" in error["message"] or "finite" in error["message"]
    assert nothing_stored()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_it_refuses_a_body_that_is_not_json_with_415(
    source_client: APIClient, content_type: str
) -> None:
    response = source_client.post(
        "/api/v1/metrics", json.dumps({"samples": [GOOD]}), content_type=content_type
    )

    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["errors"][0]["message"]
    assert nothing_stored()


@override_settings(TRADEWATCH_MAX_BATCH_ITEMS=10)
def test_it_refuses_a_batch_over_the_limit_with_413(source_client: APIClient) -> None:
    response = post(source_client, "/api/v1/metrics", {"samples": [GOOD] * 11})

    assert response.status_code == 413
    assert response.json()["errors"][0]["message"] == "11 items in one batch; the limit is 10."
    assert nothing_stored()


def test_it_refuses_more_than_ten_thousand_items_by_default(source_client: APIClient) -> None:
    response = post(source_client, "/api/v1/metrics", {"samples": [GOOD] * 10_001})

    assert response.status_code == 413
    assert nothing_stored()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_it_refuses_a_body_over_the_size_limit_with_413(source_client: APIClient) -> None:
    response = post(source_client, "/api/v1/metrics", {"samples": [GOOD] * 100})

    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["errors"][0]["message"]
    assert nothing_stored()


def test_it_refuses_a_missing_key_with_401_and_stores_nothing() -> None:
    response = post(APIClient(), "/api/v1/metrics", {"samples": [GOOD]})

    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]
    assert nothing_stored()


# --- trades ------------------------------------------------------------------------------

TRADE = {"id": "t-1", "symbol": "BTC/USDT", "side": "buy", "quantity": 0.1, "price": 50000,
         "pnl": 150.5, "fee": 0.1}  # fmt: skip


def test_it_stores_trades_and_counts_duplicates(source_client: APIClient, source: Source) -> None:
    first = post(source_client, "/api/v1/trades", {"trades": [TRADE, {**TRADE, "id": "t-2"}]})
    again = post(source_client, "/api/v1/trades", {"trades": [
        TRADE, {**TRADE, "id": "t-3"}, {**TRADE, "id": "t-3"},
    ]})  # fmt: skip

    assert first.status_code == 202
    assert first.json() == {"accepted": 2, "duplicates": 0, "trading_state": "active"}
    assert again.json() == {"accepted": 1, "duplicates": 2, "trading_state": "active"}
    assert sorted(Trade.objects.values_list("trade_id", flat=True)) == ["t-1", "t-2", "t-3"]
    trade = Trade.objects.get(trade_id="t-1")
    assert (trade.symbol, trade.side, trade.quantity, trade.price, trade.pnl, trade.fee) == (
        "BTC/USDT", "buy", 0.1, 50000.0, 150.5, 0.1,
    )  # fmt: skip


def test_it_treats_the_same_trade_id_of_two_sources_as_two_trades(source_client: APIClient) -> None:
    other = Source.objects.create(name="other-bot")
    _, key = other.issue_api_key()
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    post(source_client, "/api/v1/trades", {"trades": [TRADE]})
    response = post(other_client, "/api/v1/trades", {"trades": [TRADE]})

    assert response.json() == {"accepted": 1, "duplicates": 0, "trading_state": "active"}


def test_it_stores_an_opening_fill_without_pnl(source_client: APIClient) -> None:
    response = post(source_client, "/api/v1/trades", {"trades": [
        {"id": "o-1", "symbol": "ETH/USDT", "side": "sell", "quantity": 2, "price": 3000},
    ]})  # fmt: skip

    assert response.status_code == 202
    trade = Trade.objects.get()
    assert trade.pnl is None
    assert trade.fee == 0.0


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"side": "long"}, "side", "must be 'buy' or 'sell'"),
        ({"quantity": 0}, "quantity", "greater than 0"),
        ({"quantity": -1}, "quantity", "greater than 0"),
        ({"price": 0}, "price", "greater than 0"),
        ({"pnl": "lots"}, "pnl", "must be a number"),
        ({"id": ""}, "id", "must not be empty"),
        ({"id": 7}, "id", "must be a string"),
        ({"id": "x" * 101}, "id", "at most 100"),
        ({"symbol": None}, "symbol", "must be a string"),
        ({"leverage": 3}, "leverage", "unknown field"),
    ],
)
def test_it_refuses_a_bad_trade_naming_the_field(
    source_client: APIClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = post(
        source_client, "/api/v1/trades", {"trades": [TRADE, {**TRADE, "id": "t-2", **change}]}
    )

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert message in error["message"]
    assert nothing_stored()


def test_it_refuses_a_trade_without_its_id(source_client: APIClient) -> None:
    trade = {k: v for k, v in TRADE.items() if k != "id"}

    response = post(source_client, "/api/v1/trades", {"trades": [trade]})

    assert response.json()["errors"] == [{"index": 0, "field": "id", "message": "is required"}]
    assert nothing_stored()


# --- heartbeat and events ------------------------------------------------------------------


def test_it_records_heartbeats(source_client: APIClient, source: Source) -> None:
    first = post(source_client, "/api/v1/heartbeat", {"status": "ok", "info": {"version": "1.2"}})
    second = source_client.post("/api/v1/heartbeat")  # no body: status ok

    assert first.status_code == 202
    assert second.status_code == 202
    heartbeat = SourceHeartbeat.objects.get(source=source)
    assert heartbeat.status == "ok"
    assert heartbeat.count == 2
    assert heartbeat.info == {}
    assert abs((timezone.now() - heartbeat.last_seen).total_seconds()) < 60


def test_it_ignores_a_late_heartbeat_for_the_status(
    source_client: APIClient, source: Source
) -> None:
    post(source_client, "/api/v1/heartbeat", {"status": "ok"})
    late = (timezone.now() - timedelta(minutes=1)).isoformat()

    post(source_client, "/api/v1/heartbeat", {"status": "error", "ts": late})

    heartbeat = SourceHeartbeat.objects.get(source=source)
    assert heartbeat.status == "ok"
    assert heartbeat.count == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"status": "fine"}, "status", "must be one of ok, degraded, error"),
        ({"info": "v1"}, "info", "must be an object"),
        ({"info": {"blob": "x" * 20_000}}, "info", "at most 16384 bytes"),
        ({"uptime": 5}, "uptime", "unknown field"),
        ({"ts": FUTURE}, "ts", "in the future"),
    ],
)
def test_it_refuses_a_bad_heartbeat(
    source_client: APIClient, body: dict[str, Any], field: str, message: str
) -> None:
    response = post(source_client, "/api/v1/heartbeat", body)

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == field
    assert message in error["message"]
    assert nothing_stored()


def test_it_stores_events(source_client: APIClient, source: Source) -> None:
    response = post(source_client, "/api/v1/events", {"events": [
        {"type": "circuit_breaker_tripped", "message": "loss limit", "context": {"loss": 512.3}},
        {"type": "artifact_updated", "context": {"artifact": "model-v7.onnx"}},
        {"type": "my_custom_thing"},
    ]})  # fmt: skip

    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "trading_state": "active"}
    tripped = Event.objects.get(type="circuit_breaker_tripped")
    assert (tripped.source, tripped.message, tripped.context) == (
        source,
        "loss limit",
        {"loss": 512.3},
    )
    assert Event.objects.filter(type="my_custom_thing", message="").exists()


@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        ({"type": "artifact_updated"}, "context.artifact", "needs the artifact's name"),
        ({"type": "Model Crashed"}, "type", "must match"),
        ({"type": "error", "context": [1]}, "context", "must be an object"),
        ({"type": "error", "message": 5}, "message", "must be a string"),
        ({"message": "no type"}, "type", "is required"),
        ({"type": "error", "severity": "high"}, "severity", "unknown field"),
    ],
)
def test_it_refuses_a_bad_event(
    source_client: APIClient, event: dict[str, Any], field: str, message: str
) -> None:
    response = post(source_client, "/api/v1/events", {"events": [{"type": "error"}, event]})

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert message in error["message"]
    assert nothing_stored()


# --- idempotency, throttling, hooks --------------------------------------------------------


def test_it_replays_the_first_answer_for_a_repeated_idempotency_key(
    source_client: APIClient,
) -> None:
    body = {"trades": [TRADE]}
    first = post(source_client, "/api/v1/trades", body, HTTP_IDEMPOTENCY_KEY="batch-1")

    again = post(source_client, "/api/v1/trades", body, HTTP_IDEMPOTENCY_KEY="batch-1")

    assert first.json() == {"accepted": 1, "duplicates": 0, "trading_state": "active"}
    # The first answer, not "1 duplicate": the batch was not processed again.
    assert again.status_code == 202
    assert again.json() == {"accepted": 1, "duplicates": 0, "trading_state": "active"}
    assert again["Idempotent-Replayed"] == "true"
    assert Trade.objects.count() == 1


def test_it_does_not_store_samples_twice_for_a_repeated_key(source_client: APIClient) -> None:
    body = {"samples": [{"name": "x", "value": 1}]}  # no ts: "now" would differ on a replay

    post(source_client, "/api/v1/metrics", body, HTTP_IDEMPOTENCY_KEY="k")
    post(source_client, "/api/v1/metrics", body, HTTP_IDEMPOTENCY_KEY="k")

    assert MetricSample.objects.count() == 1


def test_it_refuses_a_key_reused_for_another_batch(source_client: APIClient) -> None:
    post(source_client, "/api/v1/metrics", {"samples": [GOOD]}, HTTP_IDEMPOTENCY_KEY="k")

    response = post(
        source_client, "/api/v1/metrics", {"samples": [GOOD, GOOD]}, HTTP_IDEMPOTENCY_KEY="k"
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert MetricSample.objects.count() == 1


def test_it_forgets_a_key_after_the_replay_window(source_client: APIClient) -> None:
    post(source_client, "/api/v1/trades", {"trades": [TRADE]}, HTTP_IDEMPOTENCY_KEY="k")
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))

    response = post(source_client, "/api/v1/trades", {"trades": [TRADE]}, HTTP_IDEMPOTENCY_KEY="k")

    assert response.json() == {
        "accepted": 0,
        "duplicates": 1,
        "trading_state": "active",
    }  # processed anew
    assert "Idempotent-Replayed" not in response


def test_it_does_not_use_up_a_key_on_a_refused_batch(source_client: APIClient) -> None:
    bad = post(
        source_client, "/api/v1/metrics", {"samples": [{"name": "x"}]}, HTTP_IDEMPOTENCY_KEY="k"
    )
    good = post(source_client, "/api/v1/metrics", {"samples": [GOOD]}, HTTP_IDEMPOTENCY_KEY="k")

    assert bad.status_code == 400
    assert good.status_code == 202
    assert MetricSample.objects.count() == 1


def test_it_refuses_an_unprintable_idempotency_key(source_client: APIClient) -> None:
    response = post(
        source_client, "/api/v1/metrics", {"samples": [GOOD]}, HTTP_IDEMPOTENCY_KEY="x" * 201
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert nothing_stored()


@override_settings(TRADEWATCH_INGEST_RATE_PER_MINUTE=3)
def test_it_throttles_a_source_with_429_and_retry_after(source_client: APIClient) -> None:
    # The limit counts per minute: start well inside one so the four calls share it.
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)

    answers = [post(source_client, "/api/v1/heartbeat", {}) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
    throttled = answers[3]
    # Counted in one-second slots, a request leaves the window 60 to 61 s later.
    assert 1 <= int(throttled["Retry-After"]) <= 61
    assert "throttled" in throttled.json()["errors"][0]["message"].lower()
    assert SourceHeartbeat.objects.get().count == 3


def test_it_takes_the_key_from_the_url_for_hooks(source_key: str, source: Source) -> None:
    client = APIClient()

    response = post(client, f"/api/v1/hooks/events/{source_key}/", {"events": [{"type": "error"}]})
    wrong = post(client, "/api/v1/hooks/events/wrong.key/", {"events": [{"type": "error"}]})

    assert response.status_code == 202
    assert wrong.status_code == 401
    assert Event.objects.get().source == source


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/heartbeat", {"info": {"note": "a\u0000b"}}),
        ("/api/v1/events", {"events": [{"type": "error", "message": "\u0000"}]}),
        ("/api/v1/metrics", {"samples": [{**GOOD, "labels": {"k": "\u0000"}}]}),
    ],
)
def test_it_refuses_the_nul_character_naming_it(
    source_client: APIClient, path: str, body: Any
) -> None:
    response = post(source_client, path, body)

    assert response.status_code == 400
    assert "NUL" in response.json()["errors"][0]["message"]
    assert nothing_stored()
