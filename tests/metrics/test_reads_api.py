"""Operator read endpoints: snapshot and metric query, who may call them, every 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import include, path
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from core.operator_api import SOURCE_KEY_ON_OPERATOR_ENDPOINT
from metrics import queries
from metrics.models import Event, Source, SourceHeartbeat, Trade
from tests.factories import SourceFactory, make_series, make_user, token_client

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
QUERY = "/api/v1/metrics/query"


def snapshot_url(source: Source | int) -> str:
    return f"/api/v1/sources/{source.pk if isinstance(source, Source) else source}/snapshot"


@pytest.fixture
def viewer() -> APIClient:
    return token_client(make_user("viewer", "metrics.view_metricseries"))


def error(field: str | None, message: str) -> dict[str, Any]:
    return {"index": None, "field": field, "message": message}


# --- who may read -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["snapshot", QUERY + "?source=alpha-bot&name=equity"])
def test_it_refuses_an_anonymous_caller(source: Source, url: str) -> None:
    response = APIClient().get(snapshot_url(source) if url == "snapshot" else url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "errors": [error(None, "Authentication credentials were not provided.")]
    }


@pytest.mark.parametrize("url", ["snapshot", QUERY + "?source=alpha-bot&name=equity"])
def test_it_never_answers_a_source_api_key(
    source: Source, source_client: APIClient, url: str
) -> None:
    response = source_client.get(snapshot_url(source) if url == "snapshot" else url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"errors": [error(None, SOURCE_KEY_ON_OPERATOR_ENDPOINT)]}


def test_it_answers_an_admin_session_that_also_sends_a_key(source: Source, source_key: str) -> None:
    client = APIClient()
    client.force_login(User.objects.create_superuser("boss", email=None, password=None))
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {source_key}")

    assert client.get(snapshot_url(source)).status_code == 200


def test_it_refuses_a_wrong_token(source: Source) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    response = client.get(snapshot_url(source))

    assert response.status_code == 401
    assert response.json() == {"errors": [error(None, "Invalid token.")]}


@pytest.mark.parametrize("url", ["snapshot", QUERY + "?source=alpha-bot&name=equity"])
def test_it_refuses_a_user_without_the_view_permission(source: Source, url: str) -> None:
    client = token_client(make_user("stranger"))

    response = client.get(snapshot_url(source) if url == "snapshot" else url)

    assert response.status_code == 403
    assert response.json() == {
        "errors": [
            error(None, "You need the permission to view metrics (metrics.view_metricseries).")
        ]
    }


def test_it_answers_an_admin_session(source: Source) -> None:
    client = APIClient()
    client.force_login(User.objects.create_superuser("boss", email=None, password=None))

    response = client.get(snapshot_url(source))

    assert response.status_code == 200
    assert response.json()["source"]["name"] == "alpha-bot"


def test_it_answers_only_reads(source: Source, viewer: APIClient) -> None:
    response = viewer.post(snapshot_url(source), {})

    assert response.status_code == 405
    assert response.json() == {"errors": [error(None, 'Method "POST" not allowed.')]}


# --- snapshot -----------------------------------------------------------------------------


def test_it_answers_a_snapshot(source: Source, viewer: APIClient) -> None:
    now = timezone.now()
    seen = now - timedelta(seconds=10)
    make_series(source, "equity", {}, [(T0, 10_000.0)])
    make_series(source, "latency_ms", {"venue": "binance"}, [(T0, 12.5)])
    SourceHeartbeat.objects.create(
        source=source, status="ok", info={"v": "1"}, last_seen=seen, first_seen=seen
    )
    Trade.objects.create(
        source=source, trade_id="t-1", symbol="BTC/USDT", side="sell", quantity=1, price=2, ts=T0
    )
    Event.objects.create(source=source, type="circuit_breaker_tripped", message="stop", ts=T0)

    response = viewer.get(snapshot_url(source))

    assert response.status_code == 200
    body = response.json()
    assert body["source"] == {
        "id": source.pk,
        "name": "alpha-bot",
        "kind": "bot",
        "enabled": True,
        "tags": [],
    }
    assert body["metrics"] == [
        {
            "name": "latency_ms",
            "labels": {"venue": "binance"},
            "value": 12.5,
            "ts": "2026-03-02T12:00:00Z",
        }
    ]
    assert body["trading"] == {"equity": {"value": 10_000.0, "ts": "2026-03-02T12:00:00Z"}}
    assert body["heartbeat"]["status"] == "ok"
    assert body["heartbeat"]["info"] == {"v": "1"}
    assert body["heartbeat"]["overdue"] is False
    assert 10 <= body["heartbeat"]["age_seconds"] < 60
    assert body["trades"] == {"count": 1, "last_ts": "2026-03-02T12:00:00Z"}
    assert body["events"] == [
        {"type": "circuit_breaker_tripped", "message": "stop", "ts": "2026-03-02T12:00:00Z"}
    ]
    assert set(body) == {
        "source", "generated_at", "metrics", "trading", "heartbeat", "trades", "events"
    }  # fmt: skip


def test_it_finds_the_source_by_name_as_well_as_by_id(source: Source, viewer: APIClient) -> None:
    by_name = viewer.get("/api/v1/sources/alpha-bot/snapshot")
    by_id = viewer.get(snapshot_url(source))

    assert by_name.status_code == 200
    assert by_name.json()["source"]["id"] == source.pk
    assert by_id.json()["source"] == by_name.json()["source"]


def test_it_takes_an_all_digit_ref_for_an_id_before_a_name(
    source: Source, viewer: APIClient
) -> None:
    named_like_an_id = SourceFactory.create(name=str(source.pk))
    named_like_no_id = SourceFactory.create(name="987654")

    mine = viewer.get(snapshot_url(source)).json()["source"]
    other = viewer.get(snapshot_url(987654)).json()["source"]

    assert mine["name"] == "alpha-bot"
    assert named_like_an_id.pk != source.pk
    assert other["id"] == named_like_no_id.pk


@pytest.mark.parametrize("ref", ["987654", "ghost", "²", "9" * 40])
def test_it_answers_404_for_an_unknown_source(viewer: APIClient, ref: str) -> None:
    response = viewer.get(f"/api/v1/sources/{ref}/snapshot")

    assert response.status_code == 404
    assert response.json() == {"errors": [error("source", f"No source with id or name {ref!r}.")]}


# --- query --------------------------------------------------------------------------------


def test_it_answers_a_bucketed_query(source: Source, viewer: APIClient) -> None:
    make_series(
        source,
        "drawdown_pct",
        {"symbol": "BTC/USDT"},
        [(T0, 1.0), (T0 + timedelta(seconds=299), 3.5), (T0 + timedelta(seconds=300), 2.0)],
    )
    make_series(source, "drawdown_pct", {"symbol": "ETH/USDT"}, [(T0, 9.0)])

    response = viewer.get(
        QUERY,
        {
            "source": "alpha-bot",
            "name": "drawdown_pct",
            "labels": '{"symbol": "BTC/USDT"}',
            "start": "2026-03-02T11:00:00Z",
            "end": str(int((T0 + timedelta(hours=1)).timestamp())),
            "step": "5m",
            "aggregation": "max",
        },
    )

    assert response.status_code == 200
    assert response.json() == {
        "source": {"id": source.pk, "name": "alpha-bot"},
        "name": "drawdown_pct",
        "aggregation": "max",
        "step": 300,
        "start": "2026-03-02T11:00:00Z",
        "end": "2026-03-02T13:00:00Z",
        "truncated": False,
        "max_points": queries.MAX_BUCKETED_POINTS,
        "series": [
            {
                "labels": {"symbol": "BTC/USDT"},
                "points": [["2026-03-02T12:00:00Z", 3.5], ["2026-03-02T12:05:00Z", 2.0]],
            }
        ],
    }


def test_it_answers_raw_points_of_every_series_by_source_id(
    source: Source, viewer: APIClient
) -> None:
    make_series(source, "fills", {"venue": "b"}, [(T0, 1.0), (T0 + timedelta(seconds=1), 2.0)])
    make_series(source, "fills", {"venue": "a"}, [(T0, 5.0)])

    response = viewer.get(
        QUERY, {"source": str(source.pk), "name": "fills", "start": "2026-03-02T11:00:00Z"}
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["aggregation"], body["step"], body["truncated"]) == (None, None, False)
    assert body["max_points"] == queries.MAX_RAW_POINTS
    assert body["series"] == [
        {"labels": {"venue": "a"}, "points": [["2026-03-02T12:00:00Z", 5.0]]},
        {
            "labels": {"venue": "b"},
            "points": [["2026-03-02T12:00:00Z", 1.0], ["2026-03-02T12:00:01Z", 2.0]],
        },
    ]


def test_it_queries_the_last_hour_by_default(source: Source, viewer: APIClient) -> None:
    now = timezone.now().replace(microsecond=0)
    make_series(
        source, "equity", {}, [(now - timedelta(hours=2), 1.0), (now - timedelta(minutes=10), 2.0)]
    )

    response = viewer.get(QUERY, {"source": "alpha-bot", "name": "equity", "labels": ""})

    assert response.status_code == 200
    body = response.json()
    assert [value for _, value in body["series"][0]["points"]] == [2.0]
    end = datetime.fromisoformat(body["end"])
    assert datetime.fromisoformat(body["start"]) == end - timedelta(hours=1)
    assert abs(end - timezone.now()) < timedelta(minutes=1)


def test_it_says_when_points_were_cut(
    source: Source, viewer: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "MAX_RAW_POINTS", 1)
    make_series(source, "equity", {}, [(T0, 1.0), (T0 + timedelta(seconds=1), 2.0)])

    response = viewer.get(QUERY, {"source": "alpha-bot", "name": "equity", "start": "0"})

    body = response.json()
    assert (body["truncated"], body["max_points"]) == (True, 1)
    assert body["series"][0]["points"] == [["2026-03-02T12:00:00Z", 1.0]]


def test_it_answers_an_empty_list_for_an_unknown_metric(source: Source, viewer: APIClient) -> None:
    response = viewer.get(QUERY, {"source": "alpha-bot", "name": "nothing_here"})

    assert response.status_code == 200
    assert response.json()["series"] == []


BAD_QUERIES = [
    ({"name": "equity"}, [error("source", "is required (a source id or name)")]),
    ({"source": "alpha-bot"}, [error("name", "is required (a metric name)")]),
    ({"source": " ", "name": "equity"}, [error("source", "must not be empty")]),
    # A digit int() refuses (str.isdigit() is true of it) is a name nobody has.
    ({"source": "²", "name": "equity"}, [error("source", "no source with id or name '²'")]),
    (
        {"source": "ghost", "name": "equity"},
        [error("source", "no source with id or name 'ghost'")],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "labels": "{oops"},
        [error("labels", "is not valid JSON")],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "labels": "symbol"},
        [error("labels", "'symbol' is not of the form name=value")],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "start": "last tuesday"},
        [
            error(
                "start",
                "must be ISO 8601 with an offset (e.g. 2026-01-31T12:00:00Z) or UNIX seconds",
            )
        ],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "end": "2026-03-02T12:00:00"},
        [error("end", "needs a UTC offset (e.g. Z or +00:00)")],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "start": "2026-03-02T12:00:00Z", "end": "0"},
        [error("start", "must not be after end")],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "step": "fast"},
        [
            error(
                "step",
                "must be whole seconds (e.g. 60) or a number with s, m, h, d or w (e.g. 5m)",
            )
        ],
    ),
    (
        {
            "source": "alpha-bot",
            "name": "equity",
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-02T00:00:00Z",
            "step": "1s",
        },
        [
            error(
                "step",
                "cuts the range into 86401 buckets; at most 10000 are allowed "
                "(use a step of at least 9 seconds, or a shorter range)",
            )
        ],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "aggregation": "median"},
        [error("aggregation", "must be one of avg, min, max, last, sum, count")],
    ),
    (
        {"source": "alpha-bot", "name": "equity", "agg": "max"},
        [
            error(
                "agg",
                "unknown parameter; allowed: aggregation, end, labels, name, source, start, step",
            )
        ],
    ),
    (
        {"source": "alpha-bot", "name": ["equity", "drawdown_pct"]},
        [error("name", "give this parameter once")],
    ),
    (
        {"step": "0", "aggregation": "p99"},
        [
            error("source", "is required (a source id or name)"),
            error("name", "is required (a metric name)"),
            error("step", "must be at least 1 second"),
            error("aggregation", "must be one of avg, min, max, last, sum, count"),
        ],
    ),
]


@pytest.mark.parametrize(("params", "errors"), BAD_QUERIES)
def test_it_names_the_bad_parameter(
    source: Source, viewer: APIClient, params: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    response = viewer.get(QUERY, params)

    assert response.status_code == 400
    assert response.json() == {"errors": errors}


def test_it_refuses_a_name_with_too_many_series(
    source: Source, viewer: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "MAX_SERIES", 1)
    make_series(source, "equity", {"account": "a"}, [(T0, 1.0)])
    make_series(source, "equity", {"account": "b"}, [(T0, 1.0)])

    response = viewer.get(QUERY, {"source": "alpha-bot", "name": "equity"})

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            error("labels", "'equity' has more than 1 series on this source; pick one with labels")
        ]
    }


# --- OpenAPI ------------------------------------------------------------------------------


def test_it_documents_the_endpoints_without_warnings() -> None:
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/v1/", include("metrics.api.read_urls"))])

    schema = generator.get_schema(request=None, public=True)

    validate_schema(schema)
    assert not GENERATOR_STATS, "drf-spectacular warned; run manage.py spectacular --validate"
    assert set(schema["paths"]) == {
        "/api/v1/sources/{source}/snapshot", "/api/v1/metrics/query", "/api/v1/schedules",
        "/api/v1/metrics/realtime",
    }  # fmt: skip
    [ref] = schema["paths"]["/api/v1/sources/{source}/snapshot"]["get"]["parameters"]
    assert (ref["in"], ref["required"], ref["schema"]["type"]) == ("path", True, "string")
    assert ref["description"].startswith("The source's id or name")
    snapshot = schema["paths"]["/api/v1/sources/{source}/snapshot"]["get"]
    assert (
        "or a source's API key: those are for sending data"
        in (snapshot["responses"]["401"]["description"])
    )
    query = schema["paths"]["/api/v1/metrics/query"]["get"]
    assert {p["name"] for p in query["parameters"]} == {
        "source", "name", "labels", "start", "end", "step", "aggregation"
    }  # fmt: skip
    assert set(query["responses"]) == {"200", "400", "401", "403", "406", "414", "503"}
    assert (
        schema["components"]["schemas"]["MetricQuerySeries"]["properties"]["points"]["items"][
            "maxItems"
        ]
        == 2
    )
