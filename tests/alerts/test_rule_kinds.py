"""Anomaly, rate and rate-of-change rules on samples stored through the ingestion API.

The engine's arithmetic is tested on plain values in test_engine.py; here the same
rules run on what the database holds, through the loading and evaluation a worker runs.
"""

from __future__ import annotations

import json
import statistics
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert, Rule
from metrics.models import Source
from tests.alerts.conftest import MakeRule, evaluate

pytestmark = pytest.mark.django_db

WARNING, CRITICAL = 30, 50


def send(client: APIClient, name: str, values: list[float], *, seconds_apart: float) -> None:
    start = timezone.now() - timedelta(seconds=seconds_apart * len(values))
    response = client.post(
        "/api/v1/metrics",
        json.dumps({"samples": [
            {"name": name, "value": value,
             "ts": (start + timedelta(seconds=seconds_apart * i)).isoformat()}
            for i, value in enumerate(values)
        ]}),
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 202, response.content


def firing(source: Source) -> list[tuple[str, int, object]]:
    """The source's firing alerts: rule name, severity and value (to compare with approx)."""
    return [
        (alert.rule.name, alert.severity, alert.value)
        for alert in Alert.objects.filter(source=source, state="firing").select_related("rule")
    ]


def test_it_fires_an_anomaly_rule_on_a_spike_among_stored_samples(
    source: Source, source_client: APIClient, make_rule: MakeRule
) -> None:
    make_rule(
        "fill_latency_ms", [(WARNING, ">", 3, None)], kind=Rule.Kind.ANOMALY, name="spike",
        window=timedelta(minutes=10),
    )  # fmt: skip
    calm = [20.0, 22.0, 19.0, 21.0, 20.0, 23.0, 18.0, 21.0]
    send(source_client, "fill_latency_ms", calm, seconds_apart=30)
    evaluate(source)
    assert firing(source) == []

    send(source_client, "fill_latency_ms", [95.0], seconds_apart=1)
    evaluate(source)

    [(name, severity, z)] = firing(source)
    assert (name, severity) == ("spike", WARNING)
    assert z == pytest.approx((95 - statistics.mean(calm)) / statistics.stdev(calm))


def test_it_fires_a_rate_rule_on_a_stored_counter_with_a_reset(
    source: Source, source_client: APIClient, make_rule: MakeRule
) -> None:
    make_rule(
        "orders_rejected_total", [(CRITICAL, ">", 0.5, None)], aggregation="rate",
        name="rejections", window=timedelta(minutes=5),
    )  # fmt: skip
    # +10, +10, reset to 5 (counts 5), +15 over 40 s: 40 / 40 s = 1 per second.
    send(source_client, "orders_rejected_total", [100, 110, 120, 5, 20], seconds_apart=10)

    evaluate(source)

    assert firing(source) == [("rejections", CRITICAL, pytest.approx(1.0))]


def test_it_fires_a_rate_of_change_rule_in_percent_on_stored_equity(
    source: Source, source_client: APIClient, make_rule: MakeRule
) -> None:
    make_rule(
        "equity", [(WARNING, "<", -5, None), (CRITICAL, "<", -10, None)],
        kind=Rule.Kind.RATE_OF_CHANGE, change_percent=True, name="equity falling",
        window=timedelta(minutes=5),
    )  # fmt: skip
    # 5 min ago 1000 (at the window's start: the base), then a slide to 880: -12 %.
    send(source_client, "equity", [1000.0, 990.0, 960.0, 930.0, 880.0], seconds_apart=60)

    evaluate(source)

    assert firing(source) == [("equity falling", CRITICAL, pytest.approx(-12.0))]
