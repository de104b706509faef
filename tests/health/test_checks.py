"""Each kind of check against a real target on this machine."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from health.checks import Target, check_class
from health.checks.base import CheckResult
from health.scoring import Status
from metrics.ingest import event_ingest, heartbeat_record
from metrics.models import Source, SourceHeartbeat
from metrics.validation import EventIn, HeartbeatIn
from tests.alerts.conftest import record
from tests.health.conftest import LocalServer, unused_port
from tests.processes import wait_until


def probe(
    kind: str, config: dict[str, Any], *, timeout: float = 2, source: Source | None = None
) -> CheckResult:
    check_class(kind).validate(config)
    target = Target(1, f"{kind} check", kind, config, timeout, source.pk if source else None)
    return check_class(kind)().run(target, timezone.now())


# --- HTTP -------------------------------------------------------------------------


def test_it_passes_an_http_endpoint_answering_the_expected_status_and_text(
    http_server: LocalServer,
) -> None:
    http_server.answers["/ready"] = (200, b'{"status": "ready"}', 0)
    result = probe("http", {"url": http_server.url("/ready"), "body_contains": "ready"})
    assert result.status is Status.HEALTHY
    assert result.score == 100
    assert result.latency_ms is not None
    assert result.details["status_code"] == 200


def test_it_fails_an_http_endpoint_answering_the_wrong_status(http_server: LocalServer) -> None:
    http_server.answers["/ready"] = (503, b"maintenance", 0)
    result = probe("http", {"url": http_server.url("/ready")})
    assert result.status is Status.UNHEALTHY
    assert result.issues == [f"{http_server.url('/ready')} answered 503, expected 200"]


def test_it_fails_an_http_endpoint_missing_the_expected_text(http_server: LocalServer) -> None:
    http_server.answers["/ready"] = (200, b"starting", 0)
    result = probe("http", {"url": http_server.url("/ready"), "body_contains": "ready"})
    assert result.status is Status.UNHEALTHY


def test_it_degrades_a_slow_http_endpoint_and_times_out_a_slower_one(
    http_server: LocalServer,
) -> None:
    http_server.answers["/slow"] = (200, b"ok", 0.3)
    slow = probe("http", {"url": http_server.url("/slow"), "latency_limit_ms": 100})
    assert slow.status is Status.DEGRADED
    assert slow.score is not None
    assert 60 <= slow.score < 80
    http_server.answers["/slower"] = (200, b"ok", 1.5)
    started = time.monotonic()
    late = probe("http", {"url": http_server.url("/slower")}, timeout=0.5)
    assert time.monotonic() - started < 1.4
    assert late.status is Status.CRITICAL
    assert "within 0.5 s" in late.issues[0]


def test_it_refuses_an_http_check_without_a_url() -> None:
    with pytest.raises(ValidationError, match="url"):
        check_class("http").validate({"url": "ftp://example.org"})


# --- TCP --------------------------------------------------------------------------


def test_it_passes_an_open_tcp_port_and_fails_a_closed_one(tcp_listener: int) -> None:
    assert probe("tcp", {"host": "127.0.0.1", "port": tcp_listener}).status is Status.HEALTHY
    closed = probe("tcp", {"host": "127.0.0.1", "port": unused_port()})
    assert closed.status is Status.CRITICAL
    assert "refused" in closed.issues[0]


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_queries_postgresql_on_a_connection_of_its_own() -> None:
    result = probe("postgres", {"query": "SELECT 42"})
    assert result.status is Status.HEALTHY, result.issues
    assert result.details["first_value"] == "42"


@pytest.mark.django_db
def test_it_fails_postgresql_when_the_query_runs_past_the_timeout() -> None:
    result = probe("postgres", {"query": "SELECT pg_sleep(5)"}, timeout=0.5)
    assert result.status is Status.CRITICAL
    assert result.issues == ["query did not finish within 0.5 s"]


def test_it_fails_postgresql_that_is_not_there() -> None:
    result = probe("postgres", {"dsn": f"host=127.0.0.1 port={unused_port()} dbname=x user=x"})
    assert result.status is Status.CRITICAL
    assert result.issues[0].startswith("PostgreSQL: ")


# --- Redis ----------------------------------------------------------------------------


def test_it_pings_redis_and_fails_a_refused_one() -> None:
    assert probe("broker", {"url": "redis://127.0.0.1:6379/14"}).status is Status.HEALTHY
    refused = probe("broker", {"url": f"redis://127.0.0.1:{unused_port()}/0"})
    assert refused.status is Status.CRITICAL


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A Redis of the test's own on another port, which the test may stop and restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = unused_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        processes.append(
            subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip

    start()
    try:
        yield port, processes
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_it_follows_redis_going_down_and_coming_back(
    second_redis: tuple[int, list[subprocess.Popen[bytes]]],
) -> None:
    port, processes = second_redis
    config = {"url": f"redis://127.0.0.1:{port}/0", "queues": ["health"]}
    assert wait_until(lambda: probe("broker", config).status is Status.HEALTHY, 10)

    processes[0].terminate()
    processes[0].wait(10)
    down = probe("broker", config)
    assert down.status is Status.CRITICAL

    binary = shutil.which("redis-server")
    assert binary is not None
    processes.append(
        subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
    )
    assert wait_until(lambda: probe("broker", config).status is Status.HEALTHY, 10)
    assert probe("broker", config).details["queues"] == {"health": 0}


# --- host -----------------------------------------------------------------------------


def test_it_degrades_the_host_when_its_limits_are_set_below_its_usage() -> None:
    assert (
        probe("host", {"cpu_pct": 100, "memory_pct": 100, "disk_pct": 100}).status is Status.HEALTHY
    )
    # The CPU's limit out of reach: a busy machine must not add a warning of its own.
    tripped = probe("host", {"cpu_pct": 100, "memory_pct": 0, "disk_pct": 0})
    assert tripped.status is Status.DEGRADED
    assert [w.split(" ")[0] for w in tripped.warnings] == ["memory", "disk"]
    assert "(limit 0 %)" in tripped.warnings[0]


# --- what sources sent ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_judges_heartbeat_freshness_by_the_sources_period_and_grace(source: Source) -> None:
    source.heartbeat_period = timedelta(seconds=60)
    source.heartbeat_grace = timedelta(seconds=30)
    source.save()
    assert probe("heartbeat", {}, source=source).status is Status.CRITICAL  # none yet
    now = timezone.now()
    heartbeat_record(source=source, heartbeat=HeartbeatIn("ok", {}, now - timedelta(seconds=10)))
    assert probe("heartbeat", {}, source=source).status is Status.HEALTHY
    # Heartbeats only move forward: age the stored one instead.
    SourceHeartbeat.objects.filter(source=source).update(last_seen=now - timedelta(seconds=75))
    assert probe("heartbeat", {}, source=source).status is Status.DEGRADED
    SourceHeartbeat.objects.filter(source=source).update(last_seen=now - timedelta(seconds=95))
    lapsed = probe("heartbeat", {}, source=source)
    assert lapsed.status is Status.CRITICAL
    assert lapsed.issues == ["no heartbeat for 95 s (expected every 60 s + 30 s grace)"]


@pytest.mark.django_db
def test_it_judges_activity_by_the_newest_trade_event_or_sample(source: Source) -> None:
    config = {"max_idle_seconds": 600}
    assert probe("activity", config, source=source).status is Status.UNHEALTHY
    record(source, "equity", 1000, ts=timezone.now() - timedelta(minutes=20))
    idle = probe("activity", config, source=source)
    assert idle.status is Status.UNHEALTHY
    assert idle.issues == ["no activity for 20 min (limit 10 min)"]
    event_ingest(source=source, events=[EventIn("decision", "", {}, timezone.now())])
    assert probe("activity", config, source=source).status is Status.HEALTHY


@pytest.mark.django_db
def test_it_judges_staleness_of_a_metric_and_of_an_artifact(source: Source) -> None:
    record(source, "model_accuracy", 0.7, ts=timezone.now() - timedelta(hours=3))
    assert (
        probe("staleness", {"metric": "model_accuracy", "max_age_hours": 2}, source=source).status
        is Status.UNHEALTHY
    )
    assert (
        probe("staleness", {"metric": "model_accuracy", "max_age_hours": 24}, source=source).status
        is Status.HEALTHY
    )
    config = {"artifact": "sentiment.onnx", "max_age_hours": 24}
    assert probe("staleness", config, source=source).issues == [
        "artifact sentiment.onnx never updated"
    ]
    ts = timezone.now() - timedelta(hours=30)
    event_ingest(
        source=source, events=[EventIn("artifact_updated", "", {"artifact": "sentiment.onnx"}, ts)]
    )
    stale = probe("staleness", config, source=source)
    assert stale.status is Status.UNHEALTHY
    assert stale.issues == ["artifact sentiment.onnx not updated for 30 h (limit 24 h)"]
