"""Beat's evaluation of every source, shared out in parts to whichever ingest workers run
(on any host), so more workers shorten the cycle; a few sources are evaluated at once."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from alerts import tasks
from alerts.evaluation import enabled_source_ids
from alerts.models import Alert
from metrics.services import source_create
from tests.alerts.conftest import MakeRule, record
from tests.processes import celery_worker, process_environment, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def queued_parts(broker: redis.Redis) -> list[list[int]]:
    """The source ids of each evaluation part waiting in the ingest queue."""
    parts = []
    for raw in broker.lrange("ingest", 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "alerts.tasks.evaluate_sources"
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        parts.append(args[0])
    return parts


@pytest.mark.slow
def test_it_shares_the_sources_out_in_parts_that_workers_evaluate(
    make_rule: MakeRule, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "EVALUATION_PART_SOURCES", 2)
    rule = make_rule(metric="spread_bps", thresholds=[(30, ">", 50, None)])
    sources = [source_create(name=f"shared-{i}")[0] for i in range(5)]
    for source in sources:
        record(source, "spread_bps", 80)
    enabled = enabled_source_ids()  # Tradewatch's own system source too

    tasks.evaluate_all_sources.run()

    # Nothing evaluated here: the sources in parts of two, every one of them once.
    assert not Alert.objects.filter(rule=rule).exists()
    parts = queued_parts(broker)
    assert [len(part) for part in parts] == [2] * (len(enabled) // 2) + [1] * (len(enabled) % 2)
    assert sorted(pk for part in parts for pk in part) == enabled

    with celery_worker(process_environment(), queues="ingest"):
        assert wait_until(lambda: Alert.objects.filter(rule=rule).count() == len(sources), 60)
    assert broker.llen("ingest") == 0


def test_it_evaluates_as_many_sources_as_one_part_at_once(
    make_rule: MakeRule, broker: redis.Redis
) -> None:
    rule = make_rule(metric="spread_bps", thresholds=[(30, ">", 50, None)])
    source, _ = source_create(name="alone")
    record(source, "spread_bps", 80)

    tasks.evaluate_all_sources.run()

    assert Alert.objects.filter(rule=rule, source=source).count() == 1
    assert broker.llen("ingest") == 0
