"""An evaluation after a batch judges only the rules reading the batch's metrics; it must
find exactly what judging every rule finds.

The reference is the full evaluation (every rule judged after every batch, as beat
does): two sources receive the same random batches at the same instants, one is
evaluated in full, the other only for the names that arrived, and their alerts must
agree after every batch. The rules here judge their metric's newest value (with
hysteresis, several tiers, a guard metric): what only data changes. A window's aggregate
also changes as time pushes old samples out of it, with no batch of its metric; that is
beat's to see (every 15 s), as for a source that sends nothing.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.evaluation import source_evaluate
from alerts.models import Alert, Rule, Severity
from metrics.models import Source
from tests.alerts.conftest import MakeRule, open_alerts, record
from tests.factories import SourceFactory, make_alert

pytestmark = pytest.mark.django_db

METRICS = ["leverage", "open_positions", "daily_pnl", "trade_count", "unwatched"]


def state(source: Source) -> set[tuple[str, str, int, float | None]]:
    return {
        (alert.rule.name, alert.state, alert.severity, alert.peak_value)
        for alert in open_alerts(source)
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_judging_the_rules_reading_a_batch_finds_what_judging_every_rule_finds(
    make_rule: MakeRule, seed: int
) -> None:
    make_rule(
        "leverage",
        [(Severity.WARNING, ">", 3, 2.8), (Severity.CRITICAL, ">", 5, 4.5)],
        name="Leverage",
    )
    make_rule("open_positions", [(Severity.ERROR, ">", 9, None)], name="Positions")
    make_rule(
        "daily_pnl",
        [(Severity.ERROR, "<", -100, -50)],
        name="Loss",
        guard_metric="trade_count",
        guard_minimum=3,
    )
    full, targeted = SourceFactory.create(), SourceFactory.create()
    rng = random.Random(seed)
    now = timezone.now() - timedelta(minutes=30)
    fired: set[str] = set()
    for step in range(120):
        now += timedelta(seconds=rng.choice([1, 2, 5]))
        names = rng.sample(METRICS, rng.choice([1, 1, 2]))
        for name in names:
            value = {
                "leverage": rng.uniform(0, 7),
                "open_positions": rng.randint(0, 12),
                "daily_pnl": rng.uniform(-200, 50),
                "trade_count": rng.randint(0, 5),
                "unwatched": 1.0,
            }[name]
            record(full, name, value, ts=now)
            record(targeted, name, value, ts=now)
        source_evaluate(source_id=full.pk, now=now)
        source_evaluate(source_id=targeted.pk, now=now, names=frozenset(names))

        assert state(targeted) == state(full), f"seed {seed}, step {step}, batch {names}"
        fired |= {alert.rule.name for alert in open_alerts(full)}
    assert fired == {"Leverage", "Positions", "Loss"}, "a rule never fired: it proved nothing"


def test_judging_some_rules_leaves_the_alerts_of_the_others_alone(make_rule: MakeRule) -> None:
    leverage = make_rule("leverage", [(Severity.WARNING, ">", 3, None)], name="Leverage")
    positions = make_rule("open_positions", [(Severity.ERROR, ">", 6, None)], name="Positions")
    source = SourceFactory.create()
    record(source, "open_positions", 9)
    source_evaluate(source_id=source.pk)
    [alert] = open_alerts(source)
    assert alert.rule == positions

    record(source, "leverage", 1)
    source_evaluate(source_id=source.pk, names=frozenset({"leverage"}))

    # Not obsolete because unjudged: the positions alert stays open.
    [still] = open_alerts(source)
    assert still.pk == alert.pk
    assert still.state == Alert.State.FIRING
    assert leverage.pk not in {a.rule_id for a in open_alerts(source)}


def test_a_full_evaluation_still_resolves_the_alerts_of_a_disabled_rule(
    make_rule: MakeRule,
) -> None:
    rule = make_rule("open_positions", [(Severity.ERROR, ">", 6, None)], name="Positions")
    source = SourceFactory.create()
    make_alert(rule, source)
    Rule.objects.filter(pk=rule.pk).update(enabled=False)
    from alerts.evaluation import forget_rules_cache

    forget_rules_cache()
    source_evaluate(source_id=source.pk, names=frozenset({"open_positions"}))
    assert len(open_alerts(source)) == 1  # a batch's evaluation judged no rule

    source_evaluate(source_id=source.pk)  # beat's
    assert open_alerts(source) == []
