"""The first batch after a quiet spell is evaluated in its own request; a burst's rest,
and a batch that calls for derived metrics, by a worker; a failed evaluation on arrival
is handed to a worker, not lost."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from alerts import evaluation
from alerts.evaluation import forget_rules_cache
from alerts.models import Alert, Rule, Threshold
from alerts.tasks import evaluate_source
from metrics.models import MetricSeries, Source
from metrics.tasks import (
    ARRIVAL_BURST_SECONDS,
    DERIVATION_NEEDED,
    EVALUATION_PENDING,
    arrival_budget,
)
from tests.metrics.evaluation_queue import post_samples, queued_evaluations

pytestmark = pytest.mark.django_db


@pytest.fixture
def deep_queue_rule(db: None) -> Rule:
    rule = Rule.objects.create(name="Deep queue", metric="queue_depth")
    Threshold.objects.create(rule=rule, severity=40, comparison=">", value=100)
    forget_rules_cache()
    return rule


def test_a_breach_is_an_alert_before_its_request_is_answered(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert settings.TRADEWATCH_EVALUATE_ON_ARRIVAL

    post_samples(
        source_client,
        {"name": "queue_depth", "value": 500},
        capture=django_capture_on_commit_callbacks,
    )

    alert = Alert.objects.get(rule=deep_queue_rule, source=source)
    assert alert.state == Alert.State.FIRING
    assert alert.severity == 40
    assert queued_evaluations(broker) == []  # no worker was needed
    assert cache.get(EVALUATION_PENDING.format(source_id=source.pk)) is None


def test_the_rest_of_a_burst_goes_to_a_worker_at_the_end_of_the_interval(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    post_samples(
        source_client,
        {"name": "queue_depth", "value": 5},
        capture=django_capture_on_commit_callbacks,
    )
    assert queued_evaluations(broker) == []
    for value in (600, 700, 800):
        post_samples(
            source_client,
            {"name": "queue_depth", "value": value},
            capture=django_capture_on_commit_callbacks,
        )

    # Evaluated once on arrival (nothing breached then); the breaching rest waits for
    # one evaluation by a worker, due when the interval is over.
    assert not Alert.objects.filter(rule=deep_queue_rule).exists()
    [(source_id, eta)] = queued_evaluations(broker)
    assert source_id == source.pk
    assert eta is not None


def test_equity_goes_to_a_worker_which_derives_before_it_evaluates(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    post_samples(
        source_client, {"name": "equity", "value": 1000}, capture=django_capture_on_commit_callbacks
    )

    # Derivation reads the whole retention window: not in the request.
    assert not MetricSeries.objects.filter(source=source, name="peak_equity").exists()
    assert queued_evaluations(broker) == [(source.pk, None)]
    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) == 1

    evaluate_source.run(source.pk)  # what the worker does with it

    assert MetricSeries.objects.get(source=source, name="peak_equity").last_value == 1000
    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) is None


def test_a_failed_evaluation_on_arrival_is_handed_to_a_worker(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(evaluation, "sources_evaluate", broken)

    post_samples(
        source_client,
        {"name": "queue_depth", "value": 500},
        capture=django_capture_on_commit_callbacks,
    )

    # The batch is stored and answered; its evaluation is queued.
    assert MetricSeries.objects.get(source=source, name="queue_depth").last_value == 500
    assert queued_evaluations(broker) == [(source.pk, None)]
    assert "evaluating source" in caplog.text


def test_a_process_whose_budget_is_spent_hands_evaluations_to_a_worker(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.TRADEWATCH_EVALUATE_ON_ARRIVAL_SHARE = 0.0  # nothing comes back
    arrival_budget().spend(ARRIVAL_BURST_SECONDS)  # what many evaluations spent

    post_samples(
        source_client,
        {"name": "queue_depth", "value": 500},
        capture=django_capture_on_commit_callbacks,
    )

    assert not Alert.objects.filter(rule=deep_queue_rule).exists()
    assert queued_evaluations(broker) == [(source.pk, None)]
    evaluate_source.run(source.pk)  # what the worker does with it
    assert Alert.objects.get(rule=deep_queue_rule).state == Alert.State.FIRING
