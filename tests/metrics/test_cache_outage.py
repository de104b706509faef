"""With the cache (Redis) away, batches are still stored and answered 202, and rules
still judge them; what needed the cache (rate limit, queued evaluation) waits for it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from alerts.evaluation import all_sources_evaluate, enabled_rules
from alerts.models import Alert, Rule, Threshold
from metrics.models import MetricSeries, Source

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_stored_and_answered_while_the_cache_is_away(
    source_client: APIClient,
    source: Source,
    cache_away: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rule = Rule.objects.create(name="Deep queue", metric="queue_depth")
    Threshold.objects.create(rule=rule, severity=40, comparison=">", value=100)

    # Committed for real: what runs after the commit runs as in production.
    response = source_client.post(
        "/api/v1/metrics",
        json.dumps({"samples": [{"name": "queue_depth", "value": 500}]}),
        content_type="application/json",
    )

    assert response.status_code == 202, response.content
    assert MetricSeries.objects.get(source=source, name="queue_depth").last_value == 500
    assert "rate limit not checked: the cache is unavailable" in caplog.text
    # Queueing its evaluation failed after the commit: logged, not turned into a 500.
    assert "in on_commit()" in caplog.text
    # Beat's evaluation of every source does not need the cache: the alert comes.
    all_sources_evaluate()
    assert Alert.objects.get(rule=rule, source=source).state == Alert.State.FIRING


def test_rules_are_read_afresh_while_the_cache_is_away(
    cache_away: None, caplog: pytest.LogCaptureFixture, django_assert_num_queries: Any
) -> None:
    Rule.objects.all().delete()
    rule = Rule.objects.create(name="Deep queue", metric="queue_depth")
    Threshold.objects.create(rule=rule, severity=40, comparison=">", value=100)
    assert [r.pk for r in enabled_rules()] == [rule.pk]

    # No generation to compare with: an edit could go unseen, so no copy is trusted.
    Threshold.objects.filter(rule=rule).update(value=200)
    [again] = enabled_rules()

    assert [t.value for t in again.thresholds.all()] == [200]
    assert "rules read afresh: the cache is unavailable" in caplog.text
    assert not Alert.objects.exists()
