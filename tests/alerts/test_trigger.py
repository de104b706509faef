"""Which batches have their source evaluated (only those a rule could judge), and one
evaluation of a source in flight at a time."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from alerts.evaluation import forget_rules_cache, watched_metric_names
from alerts.models import Rule, Threshold
from alerts.trigger import (
    DERIVATION_NEEDED,
    IN_FLIGHT,
    NAMES,
    evaluation_claim,
    evaluation_finish,
)
from metrics.models import Source
from tests.alerts.evaluation_queue import post_samples, queued_sources

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _evaluations_by_workers(settings: Any) -> None:
    """What is queued is the subject here; evaluating on arrival is tested on its own."""
    settings.TRADEWATCH_EVALUATE_ON_ARRIVAL = False


def test_it_queues_no_evaluation_for_metrics_no_rule_watches(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    post_samples(
        source_client,
        {"name": "latency_ms", "value": 3, "labels": {"endpoint": "order"}},
        capture=django_capture_on_commit_callbacks,
    )

    assert queued_sources(broker) == []
    assert cache.get(IN_FLIGHT.format(source_id=source.pk)) is None


def test_it_queues_an_evaluation_for_a_metric_a_rule_watches(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert "leverage" in watched_metric_names()  # the trading pack's Leverage rule

    post_samples(
        source_client,
        {"name": "latency_ms", "value": 3},
        {"name": "leverage", "value": 1.5},
        capture=django_capture_on_commit_callbacks,
    )

    assert queued_sources(broker) == [source.pk]
    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) is None


def test_it_always_queues_an_evaluation_with_derivation_for_equity(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    Rule.objects.all().delete()  # derived metrics (drawdown...) come from equity anyway
    forget_rules_cache()

    post_samples(
        source_client, {"name": "equity", "value": 1000}, capture=django_capture_on_commit_callbacks
    )

    assert queued_sources(broker) == [source.pk]
    assert cache.get(DERIVATION_NEEDED.format(source_id=source.pk)) == 1


def test_it_watches_the_metric_of_a_new_rule_once_rules_are_read_again(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert "queue_depth" not in watched_metric_names()
    rule = Rule.objects.create(name="Deep queue", metric="queue_depth")
    Threshold.objects.create(rule=rule, severity=30, comparison=">", value=100)
    forget_rules_cache()  # what WATCHED_TTL_SECONDS does in every process

    post_samples(
        source_client,
        {"name": "queue_depth", "value": 5},
        capture=django_capture_on_commit_callbacks,
    )

    assert queued_sources(broker) == [source.pk]


def test_it_watches_the_guard_metric_of_a_rule_but_not_an_event_type(db: None) -> None:
    Rule.objects.create(
        name="Guarded", metric="fill_ratio", guard_metric="order_count", guard_minimum=10
    )
    Rule.objects.create(name="Breaker", kind=Rule.Kind.EVENT, metric="breaker_tripped")
    Rule.objects.create(name="Off", metric="disabled_metric", enabled=False)
    forget_rules_cache()

    watched = watched_metric_names()

    assert {"fill_ratio", "order_count"} <= watched
    assert "breaker_tripped" not in watched
    assert "disabled_metric" not in watched


def test_it_queues_one_evaluation_for_a_burst_and_one_more_for_what_came_meanwhile(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    for value in range(10):
        post_samples(
            source_client,
            {"name": "leverage", "value": value},
            capture=django_capture_on_commit_callbacks,
        )
    assert queued_sources(broker) == [source.pk]  # one in flight; the rest merged into it

    assert evaluation_claim(source.pk).derive is False  # a worker starts it: no derivation
    post_samples(
        source_client, {"name": "equity", "value": 1000}, capture=django_capture_on_commit_callbacks
    )
    # Still one in flight: the equity waits for it to end, not for an interval.
    assert queued_sources(broker) == [source.pk]
    assert evaluation_finish(source.pk) is True  # it ends: one more is due at once
    assert evaluation_claim(source.pk).derive is True  # and it derives first (the equity)
    assert evaluation_finish(source.pk) is False  # nothing came meanwhile: idle

    post_samples(
        source_client, {"name": "leverage", "value": 1}, capture=django_capture_on_commit_callbacks
    )
    assert queued_sources(broker) == [source.pk, source.pk]


def test_an_evaluation_after_batches_judges_the_rules_reading_what_arrived_meanwhile(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def post(*samples: dict[str, Any]) -> None:
        post_samples(source_client, *samples, capture=django_capture_on_commit_callbacks)

    post({"name": "leverage", "value": 1.5}, {"name": "latency_ms", "value": 3})
    # What the first evaluation judges: the rules reading leverage (no rule reads latency).
    assert evaluation_claim(source.pk).names == frozenset({"leverage"})
    post({"name": "open_positions", "value": 2})
    post({"name": "leverage", "value": 1.6}, {"name": "exchange_latency_ms", "value": 40})
    assert evaluation_finish(source.pk) is True
    # The next one: everything that arrived while the first ran, none lost in the merge.
    assert evaluation_claim(source.pk).names == frozenset(
        {"open_positions", "leverage", "exchange_latency_ms"}
    )
    assert evaluation_finish(source.pk) is False


def test_trades_events_and_equity_have_every_rule_judged(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    post_samples(source_client, {"name": "leverage", "value": 1.5}, capture=capture)
    with django_capture_on_commit_callbacks(execute=True):
        response = source_client.post(
            "/api/v1/events",
            {"events": [{"type": "kill_switch_activated", "message": "manual"}]},
            format="json",
        )
    assert response.status_code == 202, response.content
    assert evaluation_claim(source.pk).names is None  # every rule, and leverage's among them
    evaluation_finish(source.pk)

    post_samples(
        source_client, {"name": "equity", "value": 1000}, capture=django_capture_on_commit_callbacks
    )
    claim = evaluation_claim(source.pk)
    assert claim.derive is True
    assert claim.names is None  # derived metrics changed: every rule


def test_lost_names_have_every_rule_judged(
    source_client: APIClient,
    source: Source,
    broker: redis.Redis,
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    post_samples(source_client, {"name": "leverage", "value": 1.5}, capture=capture)
    cache.delete(NAMES.format(source_id=source.pk))  # e.g. Redis restarted meanwhile

    assert evaluation_claim(source.pk).names is None
