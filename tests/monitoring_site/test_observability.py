"""Prometheus and Grafana: the dashboard asks only for series /metrics really exposes,
and a real Prometheus scrapes a live Tradewatch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from health.selfmonitoring import self_check, worker_presence_record
from health.services import process_heartbeat_record
from metrics.services import source_create
from tests.processes import free_port, process_environment, stop, wait_until, web_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tradewatch.json"
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "tradewatch.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
METRIC_NAME = re.compile(r"\b(tradewatch_[A-Za-z0-9_]+)")


def post(url: str, key: str, body: dict[str, Any]) -> int:
    response = httpx.post(url, json=body, headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    return response.status_code


def exposed_names(text: str) -> set[str]:
    """Every sample name in a Prometheus text exposition (`_bucket`, `_total`...)."""
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.fixture
def live_tradewatch(tmp_path: Path) -> Iterator[str]:
    """A web process with a source's data and the self-check's, as in production."""
    _, key = source_create(name="grafana-bot")
    port = free_port()
    env = process_environment(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus-multiproc"))
    with web_server(env, port):
        base = f"http://127.0.0.1:{port}"
        samples = [{"name": "drawdown_pct", "value": 4.0}, {"name": "equity", "value": 10500}]
        assert post(f"{base}/api/v1/metrics", key, {"samples": samples}) == 202
        assert post(f"{base}/api/v1/heartbeat", key, {"status": "ok"}) == 202
        assert post(f"{base}/api/v1/metrics", key, {"samples": [{"name": "x"}]}) == 400
        process_heartbeat_record(role="beat", name="beat")
        worker_presence_record(name="all@host", queues=["default", "ingest", "delivery", "health"])
        self_check()
        yield base


def test_it_provisions_a_dashboard_that_asks_only_for_exposed_series(live_tradewatch: str) -> None:
    exposed = exposed_names(httpx.get(f"{live_tradewatch}/metrics", timeout=10).text)
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]

    wanted = {name for query in dashboard_queries() for name in METRIC_NAME.findall(query)}

    assert dashboard["uid"] == "tradewatch"
    assert len(dashboard["panels"]) >= 8
    assert wanted, "the dashboard queries no Tradewatch series"
    assert wanted <= exposed, sorted(wanted - exposed)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def prometheus_query(base: str, query: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(
        f"{base}/api/v1/query", params={"query": query}, timeout=5
    ).json()
    return answer


def test_it_is_scraped_by_a_real_prometheus(live_tradewatch: str, tmp_path: Path) -> None:
    assert Path(PROMETHEUS).exists(), (
        "Prometheus is not installed: `make test` installs it (Debian: apt-get install "
        "prometheus) through scripts/ensure-services."
    )
    target = live_tradewatch.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "tradewatch", "metrics_path": "/metrics",
                     "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def scraped() -> bool:
            try:
                result = prometheus_query(
                    base, 'tradewatch_metric_drawdown_pct{source="grafana-bot"}'
                )
            except (httpx.HTTPError, ValueError):
                return False  # not listening yet, or "Service Unavailable" while it starts
            return bool(result["data"]["result"])

        assert wait_until(scraped, 60, 0.5), (tmp_path / "prometheus.log").read_text()[-2000:]
        [up] = prometheus_query(base, 'up{job="tradewatch"}')["data"]["result"]
        assert up["value"][1] == "1"
        [ingested] = prometheus_query(base, 'tradewatch_ingested_items_total{endpoint="metrics"}')[
            "data"
        ]["result"]
        assert float(ingested["value"][1]) == 2.0
        backlog = prometheus_query(base, 'tradewatch_metric_queue_backlog{source="tradewatch"}')
        assert {r["metric"]["queue"] for r in backlog["data"]["result"]} == {
            "default", "ingest", "delivery", "health",
        }  # fmt: skip
        # Every dashboard query is valid PromQL for this Prometheus.
        for query in dashboard_queries():
            assert prometheus_query(base, query)["status"] == "success", query
    finally:
        stop(process)
