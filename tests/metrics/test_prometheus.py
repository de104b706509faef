"""`/metrics`: the Prometheus exposition of latest values, source health and our counters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Timestamp
from prometheus_client.validation import METRIC_LABEL_NAME_RE, METRIC_NAME_RE

from core.query_params import labels_key
from metrics import instrumentation, prometheus
from metrics.models import MetricSeries, Source, SourceHeartbeat
from tests.factories import SourceFactory

BASE_DIR = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def strict_families(text: str) -> dict[str, Metric]:
    """Parse an exposition, failing on anything Prometheus could refuse or misread."""
    assert text.endswith("\n")
    families: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family {family.name} appears twice"
        assert METRIC_NAME_RE.match(family.name), family.name
        assert family.documentation, f"{family.name} has no HELP"
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in seen, f"duplicate series {key}"
            seen.add(key)
            assert all(METRIC_LABEL_NAME_RE.match(name) for name in sample.labels), key
        families[family.name] = family
    # Every sample line belongs to the family announced just before it by HELP and TYPE.
    family_name, family_type, helped = "", "", ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped = line.split(" ")[2]
        elif line.startswith("# TYPE "):
            _, _, family_name, family_type = line.split(" ")
            assert helped == family_name, f"TYPE {family_name} without its HELP"
        else:
            name = line.split("{")[0].split(" ")[0]
            allowed = {family_name}
            if family_type == "histogram":
                allowed = {family_name + suffix for suffix in ("_bucket", "_sum", "_count")}
            assert name in allowed, f"{name} outside its family ({family_name})"
    return families


#: A sample's labels (sorted) -> its value and timestamp.
Samples = dict[tuple[tuple[str, str], ...], tuple[float, float | Timestamp | None]]


def samples_of(family: Metric) -> Samples:
    return {tuple(sorted(s.labels.items())): (s.value, s.timestamp) for s in family.samples}


def scrape(client: Client) -> tuple[str, dict[str, Metric]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    return text, strict_families(text)


def make_series(
    source: Source, name: str, labels: dict[str, str], value: float | None, ts: datetime | None
) -> MetricSeries:
    return MetricSeries.objects.create(
        source=source,
        name=name,
        labels=labels,
        labels_key=labels_key(labels),
        last_value=value,
        last_ts=ts,
    )


def beat(source: Source, ago: timedelta) -> None:
    seen = timezone.now() - ago
    SourceHeartbeat.objects.create(source=source, last_seen=seen, first_seen=seen)


# --- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "exported"),
    [
        ("symbol", "symbol"),
        ("source", "exported_source"),
        ("__name__", "exported___name__"),
        ("a-b", "a_b"),
        ("1st", "_1st"),
        ("", "_"),
    ],
)
def test_it_cleans_label_names(label: str, exported: str) -> None:
    assert prometheus.label_name(label) == exported


def test_it_keeps_the_newest_of_series_that_clash_after_cleaning() -> None:
    [family] = prometheus.source_metric_families(
        [
            ("a.b", {}, "bot", 1.0, T0),
            ("a:b", {}, "bot", 2.0, T0 + timedelta(seconds=1)),
            ("a.b", {}, "other", 3.0, T0),
        ]
    )

    assert family.name == "tradewatch_metric_a_b"
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"source": "bot"}, 2.0),
        ({"source": "other"}, 3.0),
    ]


# --- the endpoint -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_exposes_the_latest_value_of_every_enabled_series(
    source: Source, client: Client
) -> None:
    make_series(source, "drawdown_pct", {}, 4.5, T0)
    make_series(
        source,
        "latency.p99",
        {"venue": "binance", "source": "upstream"},
        0.25,
        T0 + timedelta(seconds=1),
    )
    make_series(source, "latency.p99", {"venue": "kraken"}, 0.5, T0)
    make_series(source, "created_but_empty", {}, None, None)
    other = SourceFactory.create(name="beta-bot")
    make_series(other, "drawdown_pct", {}, 11.0, T0)
    disabled = SourceFactory.create(name="off-bot", enabled=False)
    make_series(disabled, "drawdown_pct", {}, 99.0, T0)
    make_series(disabled, "only_disabled", {}, 1.0, T0)

    _, families = scrape(client)

    drawdown = families["tradewatch_metric_drawdown_pct"]
    assert drawdown.type == "gauge"
    assert "drawdown" in drawdown.documentation
    assert samples_of(drawdown) == {
        (("source", "alpha-bot"),): (4.5, None),
        (("source", "beta-bot"),): (11.0, None),
    }
    assert samples_of(families["tradewatch_metric_latency_p99"]) == {
        (("exported_source", "upstream"), ("source", "alpha-bot"), ("venue", "binance")): (
            0.25,
            None,
        ),
        (("source", "alpha-bot"), ("venue", "kraken")): (0.5, None),
    }
    assert "tradewatch_metric_created_but_empty" not in families
    assert "tradewatch_metric_only_disabled" not in families


@pytest.mark.django_db
def test_it_exposes_whether_sources_are_up(source: Source, client: Client) -> None:
    beat(source, timedelta(seconds=10))
    late = SourceFactory.create(name="late-bot")
    beat(late, timedelta(minutes=10))
    SourceFactory.create(name="quiet-bot")
    disabled = SourceFactory.create(name="off-bot", enabled=False)
    beat(disabled, timedelta(seconds=1))

    _, families = scrape(client)

    assert {
        labels: value for labels, (value, _) in samples_of(families["tradewatch_source_up"]).items()
    } == {
        (("source", "alpha-bot"),): 1.0,
        (("source", "late-bot"),): 0.0,
        (("source", "quiet-bot"),): 0.0,
    }
    ages = samples_of(families["tradewatch_source_heartbeat_age_seconds"])
    assert set(ages) == {(("source", "alpha-bot"),), (("source", "late-bot"),)}
    assert 10 <= ages[(("source", "alpha-bot"),)][0] < 60
    assert 600 <= ages[(("source", "late-bot"),)][0] < 660


@pytest.mark.django_db
def test_it_reads_the_database_twice_whatever_the_number_of_series(
    client: Client, django_assert_num_queries: Any
) -> None:
    for _ in range(5):
        source = SourceFactory.create()
        MetricSeries.objects.bulk_create(
            MetricSeries(
                source=source,
                name=f"metric_{index % 7}",
                labels={"n": str(index)},
                labels_key=labels_key({"n": str(index)}),
                last_value=float(index),
                last_ts=T0,
            )
            for index in range(40)
        )

    with django_assert_num_queries(2):
        _, families = scrape(client)

    assert sum(len(families[f"tradewatch_metric_metric_{i}"].samples) for i in range(7)) == 200


@pytest.mark.django_db
def test_it_passes_promtool_and_a_strict_parse(source: Source, client: Client) -> None:
    make_series(
        source, "equity", {"note": 'say "hi" \\ back\nslash ü', "symbol": "BTC/USDT"}, 1e6, T0
    )
    make_series(source, "win_rate_pct", {}, float("nan"), T0)
    beat(source, timedelta(seconds=1))
    instrumentation.record_ingested(endpoint="metrics", items=1)
    instrumentation.record_rejected(endpoint="metrics", reason="invalid")
    instrumentation.observe_ingest_seconds(endpoint="metrics", seconds=0.002)

    text, families = scrape(client)

    [equity] = families["tradewatch_metric_equity"].samples
    assert equity.labels["note"] == 'say "hi" \\ back\nslash ü'
    assert PROMTOOL is not None, (
        "promtool is not installed: `make test` installs it with Prometheus (Debian: "
        "apt-get install prometheus) through scripts/ensure-services."
    )
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_it_answers_only_get_and_head(client: Client) -> None:
    assert client.post("/metrics").status_code == 405


@pytest.mark.django_db
def test_it_answers_head(client: Client) -> None:
    response = client.head("/metrics")

    assert response.status_code == 200
    assert response.content == b""


# --- our own counters ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_counts_what_ingestion_reports(client: Client) -> None:
    endpoint = "counting-test"
    instrumentation.record_ingested(endpoint=endpoint, items=7)
    instrumentation.record_ingested(endpoint=endpoint, items=3)
    instrumentation.record_rejected(endpoint=endpoint, reason="too_large")
    for seconds in (0.0005, 0.004, 0.004, 3.0):
        instrumentation.observe_ingest_seconds(endpoint=endpoint, seconds=seconds)

    _, families = scrape(client)

    ingested = families["tradewatch_ingested_items"]
    assert ingested.type == "counter"
    assert samples_of(ingested)[(("endpoint", endpoint),)] == (10.0, None)
    rejected = samples_of(families["tradewatch_rejected_batches"])
    assert rejected[(("endpoint", endpoint), ("reason", "too_large"))] == (1.0, None)
    histogram = families["tradewatch_ingest_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = {
        s.labels["le"]: s.value
        for s in histogram.samples
        if s.name.endswith("_bucket") and s.labels["endpoint"] == endpoint
    }
    assert buckets["0.001"] == 1.0
    assert buckets["0.005"] == 3.0
    assert buckets["2.0"] == 3.0
    assert buckets["+Inf"] == 4.0
    assert list(buckets) == [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.0",
        "+Inf",
    ]  # fmt: skip
    count = [
        s
        for s in histogram.samples
        if s.name.endswith("_count") and s.labels["endpoint"] == endpoint
    ]
    assert [s.value for s in count] == [4.0]


@pytest.mark.django_db
def test_it_counts_up_between_scrapes(client: Client) -> None:
    def ingested(families: dict[str, Metric]) -> float:
        values = samples_of(families["tradewatch_ingested_items"])
        return values.get((("endpoint", "metrics"),), (0.0, None))[0]

    before = ingested(scrape(client)[1])
    instrumentation.record_ingested(endpoint="metrics", items=5)

    assert ingested(scrape(client)[1]) == before + 5


MULTIPROCESS_SCRIPT = """
import multiprocessing
import sys

from prometheus_client.exposition import generate_latest

from metrics import instrumentation


def worker(items):
    instrumentation.record_ingested(endpoint="metrics", items=items)
    instrumentation.record_rejected(endpoint="trades", reason="invalid")
    instrumentation.observe_ingest_seconds(endpoint="metrics", seconds=0.003)


class Own:
    def collect(self):
        return instrumentation.own_metrics()


if __name__ == "__main__":
    assert instrumentation.MULTIPROCESS_DIR is not None
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=worker, args=(items,)) for items in (2, 5)]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
        assert process.exitcode == 0
    sys.stdout.write(generate_latest(Own()).decode())
"""


def test_it_adds_up_the_counters_of_every_worker_process(tmp_path: Path) -> None:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    run = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT],
        env=environment,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    families = strict_families(run.stdout)
    assert samples_of(families["tradewatch_ingested_items"]) == {
        (("endpoint", "metrics"),): (7.0, None)
    }
    assert samples_of(families["tradewatch_rejected_batches"]) == {
        (("endpoint", "trades"), ("reason", "invalid")): (2.0, None)
    }
    histogram = samples_of(families["tradewatch_ingest_duration_seconds"])
    assert histogram[(("endpoint", "metrics"), ("le", "0.0025"))] == (0.0, None)
    assert histogram[(("endpoint", "metrics"), ("le", "0.005"))] == (2.0, None)
    assert len(list(tmp_path.glob("*.db"))) >= 2  # one file per worker process
