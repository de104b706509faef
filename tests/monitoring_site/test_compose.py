"""docker-compose.yml: checked as a file, since no container engine runs in the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring_site import launcher

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


WORKERS = ("worker-ingest", "worker-delivery", "worker-health", "worker-default")
TRADEWATCH_PARTS = ("prepare", "web", *WORKERS, "beat")


def test_it_has_the_services_tradewatch_needs(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {
        "postgres", "redis", "prepare", "web", *WORKERS, "beat", "prometheus", "grafana",
    }  # fmt: skip


def test_it_runs_one_worker_service_per_queue_the_settings_route_to(
    compose: dict[str, Any],
) -> None:
    from django.conf import settings

    routed = {settings.CELERY_TASK_DEFAULT_QUEUE} | {
        route["queue"] for route in settings.CELERY_TASK_ROUTES.values()
    }
    consumed = [
        services(compose)[name]["environment"]["TRADEWATCH_WORKER_QUEUES"] for name in WORKERS
    ]

    assert sorted(consumed) == sorted(routed)
    # `make run`'s single worker consumes the same queues.
    assert set(launcher.QUEUES.split(",")) == routed
    for name in WORKERS:
        command = launcher.worker_command(services(compose)[name]["environment"])
        queues = services(compose)[name]["environment"]["TRADEWATCH_WORKER_QUEUES"]
        assert command[command.index("-Q") + 1] == queues
        assert f"{queues}@%h" in command
        assert "TRADEWATCH_WORKER_QUEUES" in services(compose)[name]["healthcheck"]["test"][1]


def test_it_keeps_prometheus_and_grafana_in_the_observability_profile(
    compose: dict[str, Any],
) -> None:
    for name in ("prometheus", "grafana"):
        service = services(compose)[name]
        assert service["profiles"] == ["observability"]
        assert service["healthcheck"]["test"]
        for mount in service["volumes"]:
            local = mount.split(":")[0]
            if local.startswith("./"):
                assert (ROOT / local).exists(), local
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["web:8000"]
    # The scraper calls the web service by its compose name.
    assert services(compose)["web"]["environment"]["ALLOWED_HOSTS"].endswith(",web")
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/tradewatch.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_it_gives_postgres_and_redis_healthchecks_and_named_volumes(
    compose: dict[str, Any],
) -> None:
    for name in ("postgres", "redis"):
        service = services(compose)[name]
        assert service["healthcheck"]["test"], name
        volume = service["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], name
    assert "pg_isready" in " ".join(services(compose)["postgres"]["healthcheck"]["test"])


def test_it_starts_every_service_only_after_what_it_needs_is_healthy(
    compose: dict[str, Any],
) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        if name in ("postgres", "redis"):
            continue
        depends = service["depends_on"]
        assert depends, name
        for dependency, condition in depends.items():
            target = all_services[dependency]
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{name} waits on {dependency}, which has none"
            else:
                assert condition["condition"] == "service_completed_successfully"
    prepare = all_services["prepare"]["depends_on"]
    assert prepare == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_it_gives_every_service_a_healthcheck_or_a_healthy_dependency(
    compose: dict[str, Any],
) -> None:
    for name, service in services(compose).items():
        assert "healthcheck" in service or "depends_on" in service, name


@pytest.mark.parametrize("service", TRADEWATCH_PARTS)
def test_it_runs_the_same_commands_as_make_run(compose: dict[str, Any], service: str) -> None:
    command = services(compose)[service]["command"]
    part = "worker" if service.startswith("worker-") else service

    assert command == ["python", "-m", "monitoring_site.launcher", part]
    # `make run` runs `python -m monitoring_site.launcher`, which runs these same parts.
    assert part == "prepare" or part in launcher.PROCESS_COMMANDS


def test_it_runs_exactly_one_beat(compose: dict[str, Any]) -> None:
    assert services(compose)["beat"]["deploy"]["replicas"] == 1


def test_it_configures_everything_through_the_environment(compose: dict[str, Any]) -> None:
    settings_text = (ROOT / "monitoring_site" / "settings.py").read_text()
    webserver_text = (ROOT / "monitoring_site" / "webserver.py").read_text()
    launcher_text = (ROOT / "monitoring_site" / "launcher.py").read_text()
    for part in TRADEWATCH_PARTS:
        env = services(compose)[part]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["DATABASE_URL"].endswith("@postgres:5432/tradewatch")
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["DEBUG"] == "False"
        for variable in env:
            # Every variable given is one Tradewatch reads.
            assert f'"{variable}"' in settings_text + webserver_text + launcher_text, variable


def test_it_requires_a_secret_key(compose: dict[str, Any]) -> None:
    assert services(compose)["web"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_it_builds_the_image_the_services_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
    assert "USER tradewatch" in dockerfile
