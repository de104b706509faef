"""The first batch after a quiet spell is evaluated in its own request; what arrives
while an evaluation is in flight, and a batch that calls for derived metrics, by a
worker; a failed evaluation on arrival is handed to a worker, not lost."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from alerts import evaluation, trigger
from alerts.evaluation import forget_rules_cache
from alerts.models import Alert, Rule, Threshold
from alerts.tasks import evaluate_source
from alerts.trigger import (
    ARRIVAL_BURST_SECONDS,
    DERIVATION_NEEDED,
    IN_FLIGHT,
    WORKER_ROUNDS,
    arrival_budget,
    evaluation_claim,
    evaluation_request,
)
from metrics.models import MetricSeries, Source
from tests.alerts.evaluation_queue import post_samples, queued_evaluations

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
    assert cache.get(IN_FLIGHT.format(source_id=source.pk)) is None  # idle again


def test_each_batch_of_a_source_sending_one_at_a_time_is_judged_in_its_request(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    for value in (5, 600):
        post_samples(
            source_client,
            {"name": "queue_depth", "value": value},
            capture=django_capture_on_commit_callbacks,
        )

    # No interval to wait for: the first evaluation had ended when the breach came.
    assert Alert.objects.get(rule=deep_queue_rule).state == Alert.State.FIRING
    assert queued_evaluations(broker) == []


def test_a_burst_during_an_evaluation_is_judged_by_one_more_right_after_it(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    evaluation_claim(source.pk)  # a worker is evaluating the source
    for value in (600, 700, 800):
        post_samples(
            source_client,
            {"name": "queue_depth", "value": value},
            capture=django_capture_on_commit_callbacks,
        )
    # Merged, waiting for the evaluation in flight: none in these requests, none queued.
    assert not Alert.objects.filter(rule=deep_queue_rule).exists()
    assert queued_evaluations(broker) == []

    evaluate_source.run(source.pk)  # the next one, which takes in all three

    assert Alert.objects.get(rule=deep_queue_rule).value == 800
    assert queued_evaluations(broker) == []
    assert cache.get(IN_FLIGHT.format(source_id=source.pk)) is None


def test_a_change_during_a_workers_evaluation_is_evaluated_by_it_at_once(
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = evaluation.source_evaluate
    evaluated: list[frozenset[str] | None] = []

    def evaluate_while_batches_arrive(**kwargs: Any) -> None:
        if not evaluated:
            for _ in range(3):  # three batches committed meanwhile
                evaluation_request(source.pk, names=frozenset({"queue_depth"}))
        evaluated.append(kwargs.get("names"))
        real(**kwargs)

    monkeypatch.setattr(trigger, "source_evaluate", evaluate_while_batches_arrive)
    evaluation_claim(source.pk)  # as the queueing did

    evaluate_source.run(source.pk)

    # One more, right after, in the same worker (not behind every queued source), for
    # the names that arrived meanwhile; then idle.
    assert evaluated == [None, frozenset({"queue_depth"})]
    assert queued_evaluations(broker) == []
    assert cache.get(IN_FLIGHT.format(source_id=source.pk)) is None


def test_a_source_changing_during_every_evaluation_goes_back_to_the_queue(
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = evaluation.source_evaluate
    evaluations = 0

    def evaluate_while_batches_arrive(**kwargs: Any) -> None:
        nonlocal evaluations
        evaluations += 1
        evaluation_request(source.pk)
        real(**kwargs)

    monkeypatch.setattr(trigger, "source_evaluate", evaluate_while_batches_arrive)
    evaluation_claim(source.pk)

    evaluate_source.run(source.pk)

    # At most WORKER_ROUNDS in a row, then its turn in the queue: a busy source cannot
    # hold a worker while others wait.
    assert evaluations == WORKER_ROUNDS
    assert queued_evaluations(broker) == [(source.pk, None)]
    assert cache.get(IN_FLIGHT.format(source_id=source.pk)) is not None  # still in flight


def test_a_batch_finding_a_derivation_due_leaves_the_evaluation_to_a_worker(
    source_client: APIClient,
    source: Source,
    deep_queue_rule: Rule,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Equity's evaluation was lost with a killed worker: its flags expired, the
    # derivation request stayed. The next batch must not fold in its request.
    cache.set(DERIVATION_NEEDED.format(source_id=source.pk), 1, timeout=None)

    post_samples(
        source_client,
        {"name": "queue_depth", "value": 500},
        capture=django_capture_on_commit_callbacks,
    )

    assert not Alert.objects.filter(source=source).exists()
    assert queued_evaluations(broker) == [(source.pk, None)]
    evaluate_source.run(source.pk)
    assert evaluation_claim(source.pk).derive is False  # the worker derived, then evaluated
    assert Alert.objects.get(source=source, rule=deep_queue_rule).state == Alert.State.FIRING


def test_equity_goes_to_a_worker_which_derives_before_it_evaluates(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    post_samples(
        source_client, {"name": "equity", "value": 1000}, capture=django_capture_on_commit_callbacks
    )

    # A late batch folds again from a checkpoint: not in the request.
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
